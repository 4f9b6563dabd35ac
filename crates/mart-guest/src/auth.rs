//! Who is calling: the bearer token checked against the public keys from the
//! component's variables (`jwt_public_key`, `jwt_key_id`, `jwt_issuer`, and
//! during rotation `jwt_previous_public_key` / `jwt_previous_key_id`).

use mart_domain::auth::{Claims, Verifier};
use mart_domain::Problem;

use crate::config::{optional_variable, variable};
use crate::http::Request;

pub async fn verifier() -> Result<Verifier, Problem> {
    let current = (
        variable("jwt_key_id").await?,
        variable("jwt_public_key").await?,
    );
    let previous = optional_variable("jwt_previous_key_id")
        .await
        .zip(optional_variable("jwt_previous_public_key").await);
    let keys: Vec<(String, String)> = std::iter::once(current).chain(previous).collect();
    Verifier::new(
        keys.iter().map(|(k, p)| (k.as_str(), p.as_str())),
        &variable("jwt_issuer").await?,
    )
    .map_err(|e| {
        eprintln!("token verification keys: {e}");
        Problem::internal("token verification is misconfigured")
    })
}

/// The caller's verified claims, or a 401 problem.
pub async fn authenticate(request: &Request) -> Result<Claims, Problem> {
    verifier().await?.verify(request.header("authorization"))
}

/// The caller's claims if they are an admin; 401 or 403 otherwise.
pub async fn require_admin(request: &Request) -> Result<Claims, Problem> {
    let claims = authenticate(request).await?;
    claims.require_admin()?;
    Ok(claims)
}
