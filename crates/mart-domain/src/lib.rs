//! Mart's domain logic, free of any host or transport: components parse a
//! request, call into here, write, and answer. Everything here is tested
//! natively (`cargo test -p mart-domain`).

pub mod auth;
pub mod carts;
pub mod catalog;
pub mod error;
pub mod events;
pub mod inventory;
pub mod json;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod paging;
pub mod password;
pub mod payfast;
pub mod payments;
pub mod problem;
pub mod sql;
pub mod stripe;
pub mod users;

pub use error::DomainError;
pub use problem::{FieldError, Problem};

/// A canonical (lower-case, hyphenated) UUID, or `None`. Ids in paths are
/// checked with this before they reach SQL, so a malformed id is a 404.
pub fn parse_uuid(text: &str) -> Option<String> {
    let valid = text.len() == 36
        && text.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    valid.then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids() {
        assert_eq!(
            super::parse_uuid("0B7C6F0E-5A8E-4E52-9C53-8F2F0F7D9A10").as_deref(),
            Some("0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10")
        );
        for bad in [
            "",
            "0b7c6f0e5a8e4e529c538f2f0f7d9a10",
            "0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a1g",
            "1;DROP",
        ] {
            assert_eq!(super::parse_uuid(bad), None, "{bad}");
        }
    }
}
