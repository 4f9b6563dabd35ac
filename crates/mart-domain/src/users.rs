//! User rules: registration input, email normalisation, login throttling.

use serde::Deserialize;

use crate::{password, DomainError, FieldError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub email: String,
    pub name: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A registration that passed every rule, with the email normalised.
#[derive(Debug, PartialEq, Eq)]
pub struct ValidRegistration {
    pub email: String,
    pub name: String,
    pub password: String,
}

pub fn validate_registration(input: Registration) -> Result<ValidRegistration, DomainError> {
    let mut errors = Vec::new();
    let email = normalise_email(&input.email);
    if let Err(e) = check_email(&email) {
        errors.push(e);
    }
    let name = input.name.trim().to_string();
    if let Err(e) = check_name(&name) {
        errors.push(e);
    }
    if let Err(e) = password::check_policy(&input.password, &email) {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(ValidRegistration {
            email,
            name,
            password: input.password,
        })
    } else {
        Err(DomainError::Invalid(errors))
    }
}

/// Emails compare case-insensitively: stored trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A pragmatic syntax check: one `@`, a non-empty local part, a dotted
/// domain of letters, digits and hyphens, no spaces, at most 254 characters.
pub fn check_email(email: &str) -> Result<(), FieldError> {
    let invalid = || FieldError::new("email", "must be an email address such as name@example.com");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || domain.contains('@') || !labels_ok {
        return Err(invalid());
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<(), FieldError> {
    let length = name.chars().count();
    if (1..=100).contains(&length) {
        Ok(())
    } else {
        Err(FieldError::new("name", "must be 1 to 100 characters"))
    }
}

/// Failed logins before any delay applies.
pub const FREE_FAILURES: u32 = 3;
/// The longest delay between attempts, in seconds.
pub const MAX_DELAY_SECS: i64 = 300;

/// How long after the last failure the next attempt for this email must
/// wait: nothing for the first few, then doubling up to five minutes. A
/// delay, never a lockout, so an attacker cannot lock the owner out.
pub fn login_delay_secs(failures: u32) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let exponent = (failures - FREE_FAILURES).min(16);
    (1i64 << exponent).min(MAX_DELAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Problem;

    #[test]
    fn registration_normalises_and_checks_every_field() {
        let ok = validate_registration(Registration {
            email: "  Ada@Example.COM ".into(),
            name: " Ada ".into(),
            password: "analytical engine".into(),
        })
        .unwrap();
        assert_eq!(ok.email, "ada@example.com");
        assert_eq!(ok.name, "Ada");

        let bad = validate_registration(Registration {
            email: "nope".into(),
            name: "".into(),
            password: "short".into(),
        })
        .map_err(Problem::from)
        .unwrap_err();
        let fields: Vec<_> = bad.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "name", "password"]);
    }

    #[test]
    fn email_syntax() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "ü@exämple.de"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a b@c.de",
            "a@-b.co",
            "a@b..co",
            &format!("{}@b.co", "x".repeat(65)),
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn login_delay_grows_and_caps() {
        assert_eq!(login_delay_secs(0), 0);
        assert_eq!(login_delay_secs(2), 0);
        assert_eq!(login_delay_secs(3), 1);
        assert_eq!(login_delay_secs(4), 2);
        assert_eq!(login_delay_secs(6), 8);
        assert_eq!(login_delay_secs(20), MAX_DELAY_SECS);
        assert_eq!(login_delay_secs(u32::MAX), MAX_DELAY_SECS);
    }
}
