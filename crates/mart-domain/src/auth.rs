//! Access tokens: ES256-signed JWTs that every component (and Kong's `jwt`
//! plugin) verifies with the public key alone.
//!
//! Claims: `sub` (user id), `role`, `iat`, `exp`, `iss`, and `ver`, the user's
//! token version, bumped when the password changes so that the users service
//! refuses tokens issued before. The header carries `kid` so keys can rotate:
//! verifiers accept every key they are given, signers use one.

use std::collections::HashMap;

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub ver: i64,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Problem::new(
                403,
                "Forbidden",
                "this operation needs the admin role",
            ))
        }
    }
}

/// Signs tokens with one private key.
pub struct Signer {
    key: EncodingKey,
    kid: String,
    issuer: String,
    ttl_secs: i64,
}

impl Signer {
    /// `private_key_pem`: a PKCS#8 P-256 key.
    pub fn new(
        private_key_pem: &str,
        kid: &str,
        issuer: &str,
        ttl_secs: i64,
    ) -> Result<Self, String> {
        let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes())
            .map_err(|e| format!("the signing key is not a P-256 PEM key: {e}"))?;
        Ok(Self {
            key,
            kid: kid.to_string(),
            issuer: issuer.to_string(),
            ttl_secs,
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn sign(
        &self,
        user_id: &str,
        role: Role,
        version: i64,
        now: i64,
    ) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now + self.ttl_secs,
            iss: self.issuer.clone(),
            ver: version,
        };
        encode(&header, &claims, &self.key).map_err(|e| format!("signing failed: {e}"))
    }
}

/// Verifies tokens against every configured public key, by `kid`.
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    issuer: String,
}

impl Verifier {
    /// `keys`: `(kid, public key PEM)` pairs; more than one during rotation.
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
        issuer: &str,
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (kid, pem) in keys {
            let key = DecodingKey::from_ec_pem(pem.as_bytes())
                .map_err(|e| format!("public key `{kid}` is not a P-256 PEM key: {e}"))?;
            map.insert(kid.to_string(), key);
        }
        if map.is_empty() {
            return Err("no public key configured".into());
        }
        Ok(Self {
            keys: map,
            issuer: issuer.to_string(),
        })
    }

    /// Checks an `Authorization` header value: `Bearer <jwt>`. Every failure
    /// is a 401 whose detail says what was wrong, never which key exists.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Claims, Problem> {
        let header = authorization.ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let jwt_header = decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        if jwt_header.alg != Algorithm::ES256 {
            return Err(unauthorized("unsupported token algorithm"));
        }
        let key = jwt_header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| unauthorized("the token was not signed by a known key"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 30;
        decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => unauthorized("the token has expired"),
                    ErrorKind::InvalidIssuer => unauthorized("the token has the wrong issuer"),
                    ErrorKind::InvalidSignature => unauthorized("the token signature is invalid"),
                    _ => unauthorized("invalid token"),
                }
            })
    }
}

/// Revocation everywhere (issue 27). Access tokens are verified by every
/// service with the public key alone, so none can know of a password change
/// made since a token was issued; a revoked access token therefore works
/// until it expires. Access tokens are kept short-lived (`jwt_ttl_secs`,
/// 300 s by default) and a session goes on with a refresh token: opaque,
/// random, single-use (each use hands out a new one), stored by the users
/// service only as its SHA-256 together with the account's token version at
/// issue. A refresh checks that version against the account's, so after a
/// password change no refresh succeeds and every service refuses the
/// session once its last access token expires. No service but users gets
/// any credentials or state for this: the alternatives (every service
/// reading the users database, or keeping a copy of each account's token
/// version fed by `user.*` events, with a table and a handler per service)
/// would widen each service's reach or double the state to keep right.
///
/// How long a refresh token lasts unless used (14 days).
pub const REFRESH_TTL_SECS: i64 = 14 * 24 * 3600;

/// A new refresh token and the hash to store for it.
pub fn new_refresh_token() -> Result<(String, String), String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_token_hash(&token);
    Ok((token, hash))
}

/// What the users service stores for a refresh token: its SHA-256, hex. A
/// leaked table gives no usable token (the token has 256 random bits, so
/// no salt or slow hash is needed).
pub fn refresh_token_hash(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// 401 problem; components add `WWW-Authenticate: Bearer`.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::new(401, "Unauthorized", detail)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only P-256 keys (generated for these tests, never used elsewhere).
    const PRIVATE: &str = include_str!("../testdata/jwt-private.pem");
    const PUBLIC: &str = include_str!("../testdata/jwt-public.pem");
    const OTHER_PRIVATE: &str = include_str!("../testdata/jwt-other-private.pem");

    fn verifier() -> Verifier {
        Verifier::new([("k1", PUBLIC)], "mart").unwrap()
    }

    #[test]
    fn signed_tokens_verify_with_the_public_key() {
        let signer = Signer::new(PRIVATE, "k1", "mart", 900).unwrap();
        let token = signer.sign("u1", Role::Admin, 3, now()).unwrap();
        let claims = verifier().verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.ver, 3);
        assert!(claims.require_admin().is_ok());
    }

    #[test]
    fn rejects_missing_malformed_expired_forged_and_foreign_tokens() {
        let v = verifier();
        let status = |h: Option<&str>| v.verify(h).unwrap_err();
        assert_eq!(status(None).detail, "missing bearer token");
        assert_eq!(status(Some("Basic abc")).status, 401);
        assert_eq!(status(Some("Bearer not.a.jwt")).detail, "malformed token");

        let signer = Signer::new(PRIVATE, "k1", "mart", 900).unwrap();
        let expired = signer
            .sign("u1", Role::Customer, 0, now() - 10_000)
            .unwrap();
        assert_eq!(
            status(Some(&format!("Bearer {expired}"))).detail,
            "the token has expired"
        );

        let forger = Signer::new(OTHER_PRIVATE, "k1", "mart", 900).unwrap();
        let forged = forger.sign("u1", Role::Admin, 0, now()).unwrap();
        assert_eq!(
            status(Some(&format!("Bearer {forged}"))).detail,
            "the token signature is invalid"
        );

        let unknown_kid = Signer::new(PRIVATE, "k9", "mart", 900)
            .unwrap()
            .sign("u1", Role::Customer, 0, now())
            .unwrap();
        assert_eq!(
            status(Some(&format!("Bearer {unknown_kid}"))).detail,
            "the token was not signed by a known key"
        );

        let other_issuer = Signer::new(PRIVATE, "k1", "evil", 900)
            .unwrap()
            .sign("u1", Role::Customer, 0, now())
            .unwrap();
        assert_eq!(
            status(Some(&format!("Bearer {other_issuer}"))).detail,
            "the token has the wrong issuer"
        );

        // alg=none and HS256 tokens are refused before any key is used.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSJ9.";
        assert_eq!(status(Some(&format!("Bearer {none}"))).status, 401);
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_as_hashes() {
        let (a, hash_a) = new_refresh_token().unwrap();
        let (b, _) = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes, base64url without padding");
        assert_eq!(hash_a, refresh_token_hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    #[test]
    fn customers_are_not_admins() {
        let signer = Signer::new(PRIVATE, "k1", "mart", 900).unwrap();
        let token = signer.sign("u2", Role::Customer, 0, now()).unwrap();
        let claims = verifier().verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(claims.require_admin().unwrap_err().status, 403);
    }
}
