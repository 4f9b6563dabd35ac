//! Strict JSON request bodies: malformed JSON is a 400, a well-formed body of
//! the wrong shape is a 422 that names the field.

use serde::de::DeserializeOwned;

use crate::{FieldError, Problem};

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request(
            "the request body is empty; expected JSON",
        ));
    }
    // Syntax first, so that a truncated document is a 400, not a 422.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
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
    fn wrong_type_names_the_field() {
        let p = parse::<Item>(br#"{"name":"a","price_minor":"12"}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "price_minor");
        let p = parse::<Item>(br#"{"name":"a","price_minor":1,"tags":[1]}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "tags[0]");
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
