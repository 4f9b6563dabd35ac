//! Keyset paging: opaque cursors and the `limit` rule every list shares.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::FieldError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Parses `limit` (1..=100, default 20).
pub fn limit(raw: Option<&str>) -> Result<u32, FieldError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            }),
    }
}

/// Parses `offset` (0..=10 000; deeper pages should use the cursor).
pub fn offset(raw: Option<&str>) -> Result<u32, FieldError> {
    match raw {
        None => Ok(0),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| FieldError::new("offset", "must be a whole number from 0 to 10000")),
    }
}

/// Encodes the sort key of the last item of a page.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("a cursor key is plain data"))
}

pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, FieldError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| not_a_cursor())?;
    serde_json::from_slice(&bytes).map_err(|_| not_a_cursor())
}

fn not_a_cursor() -> FieldError {
    FieldError::new("cursor", "is not a cursor this API returned")
}

/// Which sort key a keyset cursor carries.
#[derive(Debug, Clone, Copy)]
pub enum SortKey {
    /// Any text (a name).
    Text,
    /// An RFC 3339 time stamp.
    Time,
}

/// A keyset cursor (the last row's sort key and id), checked down to its
/// parts: a cursor that was tampered with is the client's 422, never a
/// query the database refuses.
pub fn decode_keyset(cursor: &str, key: SortKey) -> Result<(String, String), FieldError> {
    let (sort_key, id): (String, String) = decode_cursor(cursor)?;
    let id = crate::parse_uuid(&id).ok_or_else(not_a_cursor)?;
    let key_ok = match key {
        SortKey::Text => !sort_key.contains('\0'),
        SortKey::Time => chrono::DateTime::parse_from_rfc3339(&sort_key).is_ok(),
    };
    key_ok.then_some((sort_key, id)).ok_or_else(not_a_cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_cursors_are_checked_to_their_parts() {
        let id = "0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10";
        let at = "2026-11-25T17:00:00.123456Z";
        let good = encode_cursor(&(at, id));
        assert_eq!(
            decode_keyset(&good, SortKey::Time).unwrap(),
            (at.to_string(), id.to_string())
        );
        for bad in [
            encode_cursor(&("yesterday", id)),
            encode_cursor(&(at, "1; DROP")),
            encode_cursor(&("a\0b", id)),
            "!!".to_string(),
        ] {
            let kind = if bad.contains('!') {
                SortKey::Text
            } else {
                SortKey::Time
            };
            assert_eq!(
                decode_keyset(&bad, kind).unwrap_err().field,
                "cursor",
                "{bad}"
            );
        }
        assert!(decode_keyset(&encode_cursor(&("a\0b", id)), SortKey::Text).is_err());
        assert!(decode_keyset(&encode_cursor(&("teapot", id)), SortKey::Text).is_ok());
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(limit(None).unwrap(), 20);
        assert_eq!(limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert_eq!(limit(Some(bad)).unwrap_err().field, "limit");
        }
        assert_eq!(offset(Some("5")).unwrap(), 5);
        assert!(offset(Some("10001")).is_err());
    }

    #[test]
    fn cursor_round_trip_and_garbage() {
        let key = ("Blue mug".to_string(), "0b7c".to_string());
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor::<(String, String)>(&c).unwrap(), key);
        assert!(decode_cursor::<(String, String)>("!!").is_err());
        assert!(decode_cursor::<(String, String)>(&encode_cursor(&5)).is_err());
    }
}
