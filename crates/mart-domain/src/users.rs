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

/// `POST /auth/token` with a refresh token instead of a password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
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

/// Why the configured admin password (`admin_password`) cannot be used:
/// it must pass the policy every user's password passes (for the admin's
/// email) and must not be a template's placeholder (`change-me`,
/// `changeme`, `replace-me`, … as `.env.example` ships them), which anyone
/// who read the template knows. The rule broken, never the password.
pub fn check_admin_password(admin_email: &str, password: &str) -> Result<(), String> {
    password::check_policy(password, &normalise_email(admin_email))
        .map_err(|e| e.message.clone())?;
    if is_placeholder(password) {
        return Err(
            "must not be a placeholder such as the templates' `change-me` values; \
             set a password of your own"
                .into(),
        );
    }
    Ok(())
}

/// A value a template ships for the operator to replace: its letters and
/// digits (lower-cased) contain `changeme`, `replaceme`, `placeholder` or
/// `yourpassword`, or it still holds a `{{ … }}` or `<…>` template marker.
pub fn is_placeholder(value: &str) -> bool {
    let letters: String = value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    ["changeme", "replaceme", "placeholder", "yourpassword"]
        .iter()
        .any(|marker| letters.contains(marker))
        || value.contains("{{")
        || (value.trim_start().starts_with('<') && value.trim_end().ends_with('>'))
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

/// Who is trying passwords, for the login throttle: the address of the
/// peer that connected (`peer`, as the host reports it), unless that peer
/// is a proxy the operator trusts (`trusted`: the `trusted_proxies`
/// variable, comma-separated addresses and CIDR blocks). Then the client
/// is the last address in `X-Forwarded-For` (`forwarded_for`, every such
/// header joined with commas): the hop that proxy appended, the address it
/// was connected from. Nothing further left is believed, even an address
/// inside `trusted`: a range such as a pod network holds clients as well as
/// proxies, and whatever a client wrote sits there. A chain of proxies in
/// front of the trusted one is that proxy's to resolve (Kong's
/// `trusted_ips` and `real_ip_header`), so the hop it appends is the real
/// client. A peer that is not trusted is its own client whatever the
/// header says, so no client escapes its throttle (or takes another's) by
/// sending one.
pub fn client_address(peer: &str, forwarded_for: Option<&str>, trusted: &str) -> String {
    let peer_ip = parse_ip(peer);
    let peer_key = || peer_ip.map_or_else(|| peer.trim().to_string(), |ip| ip.to_string());
    let proxies = trusted_proxies(trusted);
    if !peer_ip.is_some_and(|ip| proxies.iter().any(|p| p.contains(ip))) {
        return peer_key();
    }
    let appended = forwarded_for
        .and_then(|header| header.rsplit(',').next())
        .map(str::trim)
        .filter(|hop| !hop.is_empty());
    match appended {
        None => peer_key(),
        Some(hop) => match parse_ip(hop) {
            Some(ip) => ip.to_string(),
            // Not an address (`unknown`, an obfuscated name): still what
            // the proxy wrote for this client.
            None => hop.chars().take(64).collect(),
        },
    }
}

/// An address as proxies and hosts write it: `1.2.3.4`, `1.2.3.4:5678`,
/// `::1`, `[::1]:5678`; IPv4-mapped IPv6 addresses as IPv4.
fn parse_ip(text: &str) -> Option<std::net::IpAddr> {
    let text = text.trim();
    let ip = text
        .parse::<std::net::IpAddr>()
        .or_else(|_| text.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            text.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
        })
        .ok()?;
    Some(match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    })
}

/// One entry of `trusted_proxies`: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: std::net::IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// `10.0.0.0/8`, `192.0.2.1`, `fd00::/8`, `::1`.
    pub fn parse(text: &str) -> Option<IpBlock> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.trim().parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network = parse_ip(address)?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(IpBlock { network, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.network, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// `trusted_proxies` as blocks. An entry that is neither an address nor a
/// CIDR block trusts nothing (fail closed: the peer stays the client).
pub fn trusted_proxies(setting: &str) -> Vec<IpBlock> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(IpBlock::parse)
        .collect()
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

/// How many seconds this attempt must still wait, `failures` attempts
/// having been counted and the last of them `elapsed_secs` ago. The last
/// one may be dated after this attempt began (a parallel attempt recorded
/// it meanwhile), so a negative time since is no time at all: otherwise
/// the owner's second tab would wait although no delay applies.
pub fn login_wait_secs(failures: u32, elapsed_secs: i64) -> i64 {
    (login_delay_secs(failures) - elapsed_secs.max(0)).max(0)
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
    fn the_admin_password_passes_the_policy_and_is_no_placeholder() {
        assert!(check_admin_password("admin@mart.test", "a long own secret").is_ok());
        // .env.example's and the old `make run` default.
        for placeholder in [
            "change-me-admin",
            "admin-password-change-me",
            "CHANGEME123",
            "Change_Me_Please",
            "replace-me-now",
            "{{ admin_password }}",
            "<your password here>",
        ] {
            let rule = check_admin_password("admin@mart.test", placeholder).unwrap_err();
            assert!(rule.contains("placeholder"), "{placeholder}: {rule}");
            assert!(!rule.contains(placeholder), "the rule does not echo it");
        }
        assert!(check_admin_password("admin@mart.test", "short")
            .unwrap_err()
            .contains("at least 8"));
        assert!(check_admin_password("Admin@Mart.test", "admin@mart.test")
            .unwrap_err()
            .contains("email"));
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let kong = "10.0.0.5:41000";
        // No trusted proxies: the header is ignored, whoever sends it.
        assert_eq!(client_address(kong, Some("203.0.113.9"), ""), "10.0.0.5");
        // An untrusted peer's header is ignored too.
        assert_eq!(
            client_address("198.51.100.1:1234", Some("203.0.113.9"), "10.0.0.0/8"),
            "198.51.100.1"
        );
        // From a trusted proxy: the rightmost hop it did not write itself.
        assert_eq!(
            client_address(kong, Some("203.0.113.9"), "10.0.0.0/8"),
            "203.0.113.9"
        );
        // What the client put on the left is not believed.
        assert_eq!(
            client_address(kong, Some("192.0.2.77, 203.0.113.9"), "10.0.0.0/8"),
            "203.0.113.9"
        );
        // Only the hop the trusted proxy appended is believed, even when it
        // lies in the trusted range (a pod network holds clients too): an
        // in-cluster client, or traffic NATed to a node's address, cannot
        // hide behind an address it wrote itself.
        assert_eq!(
            client_address(
                kong,
                Some("1.2.3.4, 10.244.0.1"),
                "10.0.0.0/8, 10.244.0.0/16"
            ),
            "10.244.0.1"
        );
        // No header: the proxy is the client.
        assert_eq!(client_address(kong, None, "10.0.0.5"), "10.0.0.5");
        assert_eq!(client_address(kong, Some(" "), "10.0.0.5"), "10.0.0.5");
        // Ports, IPv6 and IPv4-mapped addresses.
        assert_eq!(
            client_address(
                "[::ffff:127.0.0.1]:80",
                Some("[2001:db8::1]:443"),
                "127.0.0.1"
            ),
            "2001:db8::1"
        );
        // A setting that is not an address trusts nothing.
        assert_eq!(
            client_address(kong, Some("203.0.113.9"), "kong"),
            "10.0.0.5"
        );
    }

    #[test]
    fn ip_blocks() {
        let block = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains("10.255.0.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(!block.contains("::1".parse().unwrap()));
        assert!(IpBlock::parse("0.0.0.0/0")
            .unwrap()
            .contains("192.0.2.1".parse().unwrap()));
        assert!(IpBlock::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert_eq!(IpBlock::parse("10.0.0.0/33"), None);
        assert_eq!(IpBlock::parse("nope"), None);
    }

    #[test]
    fn a_wait_counts_from_the_last_failure_never_before_it() {
        assert_eq!(login_wait_secs(0, 0), 0);
        assert_eq!(login_wait_secs(1, -1), 0, "a parallel attempt dated later");
        assert_eq!(login_wait_secs(2, -5), 0);
        assert_eq!(login_wait_secs(3, -1), 1, "never more than the delay");
        assert_eq!(login_wait_secs(4, 1), 1);
        assert_eq!(login_wait_secs(4, 9), 0);
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
