//! Strict JSON request bodies: malformed JSON is a 400, a well-formed body of
//! the wrong shape is a 422 that names the field.

use serde::de::DeserializeOwned;

use crate::{FieldError, Problem};

/// Why a text with a NUL character is refused: PostgreSQL cannot store it
/// in any text column, so it would fail as a server error further in.
pub const NUL_MESSAGE: &str = "must not contain NUL (\\u0000) characters";

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request(
            "the request body is empty; expected JSON",
        ));
    }
    // Syntax first, so that a truncated document is a 400, not a 422.
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    integral_numbers_as_integers(&mut value);
    if let Some(field) = text_with_nul(&value, "") {
        return Err(Problem::invalid(vec![FieldError::new(field, NUL_MESSAGE)]));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "body".to_string(),
            path => path,
        };
        let message = e.inner().to_string();
        // serde names unknown and missing fields in the message, not the path.
        let named = quoted_field(&message, "unknown field `")
            .map(|name| (name, "unknown field"))
            .or_else(|| {
                quoted_field(&message, "missing field `").map(|name| (name, "is required"))
            });
        let (field, message) = match named {
            Some((name, what)) if field == "body" => (name.to_string(), what.to_string()),
            Some((name, what)) if field == name || field.ends_with(&format!(".{name}")) => {
                (field, what.to_string())
            }
            Some((name, what)) => (format!("{field}.{name}"), what.to_string()),
            None => (field, message),
        };
        Problem::invalid(vec![FieldError::new(field, message)])
    })
}

/// `35.0` is the integer 35, as JSON Schema (and so the API document) has
/// it: an integer is any number without a fractional part. Rust's integer
/// fields take only `35`, so integral numbers are made integers first.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(x) = n.as_f64() else { return };
            // Within i64 and exactly representable (|x| <= 2^53 for f64).
            if x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0 {
                *value = serde_json::Value::from(x as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(integral_numbers_as_integers)
        }
        _ => {}
    }
}

/// The JSON path of the first string (value or key) holding a NUL character.
fn text_with_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    let at = |key: &str| match path {
        "" => key.to_string(),
        _ => format!("{path}.{key}"),
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| text_with_nul(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(at("(a key)"))
            } else {
                text_with_nul(v, &at(k))
            }
        }),
        _ => None,
    }
}

fn quoted_field<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        price_minor: i64,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn malformed_json_is_400() {
        let p = parse::<Item>(b"{\"name\":").unwrap_err();
        assert_eq!(p.status, 400);
        assert_eq!(parse::<Item>(b"").unwrap_err().status, 400);
    }

    #[test]
    fn an_integral_number_is_an_integer_as_in_json_schema() {
        let item = parse::<Item>(br#"{"name":"a","price_minor":561.0}"#).unwrap();
        assert_eq!(item.price_minor, 561);
        let p = parse::<Item>(br#"{"name":"a","price_minor":561.5}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "price_minor");
        let p = parse::<Item>(br#"{"name":"a","price_minor":1e300}"#).unwrap_err();
        assert_eq!(
            p.errors[0].field, "price_minor",
            "too large for any integer"
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let p = parse::<Item>(br#"{"name":"a","price_minor":"12"}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "price_minor");
        let p = parse::<Item>(br#"{"name":"a","price_minor":1,"tags":[1]}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "tags[0]");
    }

    #[test]
    fn nul_characters_are_refused_with_the_field() {
        let p = parse::<Item>(br#"{"name":"a\u0000b","price_minor":1}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "name");
        let p =
            parse::<Item>(br#"{"name":"a","price_minor":1,"tags":["x","\u0000"]}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "tags[1]");
    }

    #[test]
    fn unknown_and_missing_fields() {
        let p = parse::<Item>(br#"{"name":"a","price_minor":1,"colour":"red"}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "colour");
        assert_eq!(p.errors[0].message, "unknown field");
        let p = parse::<Item>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "price_minor");
        assert_eq!(p.errors[0].message, "is required");
        let p = parse::<Item>(b"[]").unwrap_err();
        assert_eq!(p.status, 422);
    }
}
