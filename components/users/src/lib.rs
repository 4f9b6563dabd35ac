//! Users and authentication: `/users`, `/users/me`, `/users/{id}`, `/auth/token`.

mod db;

use mart_domain::auth::{self, Role, Signer};
use mart_domain::events::{EventData, UserRegistered};
use mart_domain::users::{self, Login, ProfileUpdate, Refresh, Registration};
use mart_domain::DomainError;
use mart_domain::{password, FieldError, Problem};
use mart_guest::config::{optional_variable, variable};
use mart_guest::{
    json_body, json_response, method_not_allowed, problem_response, subpath, Method, Request,
    Response,
};

use crate::db::{Db, User};

const MAX_BODY_BYTES: usize = 16 * 1024;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let route = request.header("spin-component-route").unwrap_or_default();
    if route == "/auth/token" {
        return match request.method() {
            Method::Post => issue_token(request).await,
            _ => Err(method_not_allowed(request, &["POST"])),
        };
    }
    match (
        request.method(),
        subpath(request, "/users")
            .unwrap_or_default()
            .trim_matches('/'),
    ) {
        (Method::Post, "") => register(request).await,
        (Method::Get, "me") => me(request).await,
        (Method::Patch, "me") => update_me(request).await,
        (Method::Get, id) if !id.is_empty() => get_user(request, id).await,
        (_, "") => Err(method_not_allowed(request, &["POST"])),
        (_, "me") => Err(method_not_allowed(request, &["GET", "PATCH"])),
        _ => Err(method_not_allowed(request, &["GET"])),
    }
}

async fn register(request: &Request) -> Result<Response, Problem> {
    let input: Registration = json_body(request, MAX_BODY_BYTES)?;
    let valid = users::validate_registration(input)?;
    // The configured admin's address is theirs before they first sign in:
    // an account registered under it would keep the admin out for good.
    // Answered as any taken address is.
    let admin = optional_variable("admin_email")
        .await
        .map(|e| users::normalise_email(&e));
    if admin.as_deref() == Some(valid.email.as_str()) {
        return Err(Problem::conflict(
            "an account with this email already exists",
        ));
    }
    let hash = password::hash(&valid.password).map_err(Problem::internal)?;
    let db = Db::connect().await?;
    let user = db
        .transaction(async |db| -> Result<_, DomainError> {
            let user = db
                .insert_user(&valid.email, &valid.name, &hash, Role::Customer)
                .await?;
            db.record(&user.id, &registered(&user)).await?;
            Ok(user)
        })
        .await?;
    let mut response = json_response(201, &user.profile());
    response.set_header("location", format!("/users/{}", user.id));
    Ok(response)
}

/// One message for unknown email and wrong password: no account enumeration.
fn bad_credentials() -> Problem {
    auth::unauthorized("the email or password is wrong")
}

/// Who is trying passwords: the client's IP as the host reports it (the
/// host sets `spin-client-addr` and drops client-sent `spin-*` headers);
/// behind a proxy listed in the `trusted_proxies` variable (e.g. Kong),
/// the client that proxy names in `X-Forwarded-For`
/// (`users::client_address`). Without that, every client behind the
/// proxy would share one throttle, and anyone's guessing would delay the
/// owner.
async fn client_of(request: &Request) -> String {
    let peer = request.header("spin-client-addr").unwrap_or_default();
    let trusted = optional_variable("trusted_proxies")
        .await
        .unwrap_or_default();
    if trusted.trim().is_empty() {
        return users::client_address(peer, None, "");
    }
    // Every X-Forwarded-For header, in order, as one list.
    let forwarded: Vec<&str> = request.header_all("x-forwarded-for").collect();
    let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
    users::client_address(peer, forwarded.as_deref(), &trusted)
}

/// 429 with `Retry-After`: this client must wait before its next password.
fn too_many_attempts(wait: i64) -> Response {
    let problem = Problem::new(
        429,
        "Too Many Requests",
        format!("too many failed attempts; retry in {wait} s"),
    );
    let mut response = problem_response(&problem);
    response.set_header("retry-after", wait.to_string());
    response
}

/// Checks `password` against `hash` for an attempt already taken
/// (`take_login_attempt`). A match forgets the client's failures; a mismatch
/// starts the delay again from now, so that it runs from when the client
/// learns of the failure, not from when the memory-hard check began (which
/// can take longer than the first delay on a loaded machine).
async fn check_attempt(
    db: &Db,
    email: &str,
    client: &str,
    password: &str,
    hash: &str,
) -> Result<bool, Problem> {
    let matches = password::verify(password, hash);
    if matches {
        db.clear_login_attempts(email, client).await?;
    } else {
        db.restart_login_delay(email, client).await?;
    }
    Ok(matches)
}

/// `POST /auth/token`: `{email, password}` signs in; `{refresh_token}` goes
/// on with a session (see `mart_domain::auth::REFRESH_TTL_SECS`). Either
/// answers a short-lived access token and a new single-use refresh token.
async fn issue_token(request: &Request) -> Result<Response, Problem> {
    let body: serde_json::Value = json_body(request, MAX_BODY_BYTES)?;
    if body.get("refresh_token").is_some() {
        let input: Refresh = mart_domain::json::parse(request.body())?;
        return refresh(&input.refresh_token).await;
    }
    let input: Login = mart_domain::json::parse(request.body())?;
    let email = users::normalise_email(&input.email);
    let db = Db::connect().await?;
    let client = client_of(request).await;
    if let Some(wait) = db.take_login_attempt(&email, &client).await? {
        return Ok(too_many_attempts(wait));
    }
    bootstrap_admin(&db, &email, &input.password).await?;
    let user = db.user_by_email(&email).await?;
    let stored_hash = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .unwrap_or(password::dummy_hash());
    let matches = check_attempt(&db, &email, &client, &input.password, stored_hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(bad_credentials());
    };
    tokens(&db, &user).await
}

/// A session goes on: the refresh token is used up (a second use fails),
/// and honoured only while the account's token version is the one it was
/// issued at, so a password change ends every session of before here and,
/// once their access tokens expire, everywhere.
async fn refresh(refresh_token: &str) -> Result<Response, Problem> {
    let revoked = || {
        auth::unauthorized("the refresh token is unknown, used, expired or revoked; log in again")
    };
    let db = Db::connect().await?;
    let (user_id, version) = db
        .take_refresh_token(&auth::refresh_token_hash(refresh_token))
        .await?
        .ok_or_else(revoked)?;
    let user = db.user_by_id(&user_id).await?.ok_or_else(revoked)?;
    if user.token_version != version {
        return Err(revoked());
    }
    tokens(&db, &user).await
}

/// An access token and a refresh token for `user` at its token version.
async fn tokens(db: &Db, user: &User) -> Result<Response, Problem> {
    let signer = signer().await?;
    let token = signer
        .sign(&user.id, user.role, user.token_version, auth::now())
        .map_err(Problem::internal)?;
    let (refresh_token, hash) = auth::new_refresh_token().map_err(Problem::internal)?;
    db.insert_refresh_token(&hash, &user.id, user.token_version, auth::REFRESH_TTL_SECS)
        .await?;
    Ok(json_response(
        200,
        &serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": signer.ttl_secs(),
            "refresh_token": refresh_token,
            "refresh_expires_in": auth::REFRESH_TTL_SECS,
        }),
    ))
}

/// `user.registered` for a new account.
fn registered(user: &User) -> EventData {
    EventData::UserRegistered(UserRegistered {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
    })
}

/// The first login as the configured admin creates that account (variables
/// `admin_email` and `admin_password`); afterwards it is an ordinary admin.
async fn bootstrap_admin(db: &Db, email: &str, given_password: &str) -> Result<(), Problem> {
    let (Some(admin_email), Some(admin_password)) = (
        optional_variable("admin_email").await,
        optional_variable("admin_password").await,
    ) else {
        return Ok(());
    };
    if users::normalise_email(&admin_email) != email || given_password != admin_password {
        return Ok(());
    }
    // The configured password must be one the policy accepts and not a
    // template's placeholder: a deployment made from `.env.example` would
    // otherwise give the admin account to anyone who read the template.
    // Refused even when the account exists (created before this check), so
    // a placeholder never signs anyone in as the admin; an admin who has
    // changed the password signs in with the new one as before. A 500, not
    // a 4xx: the client sent what the operator configured, and only the
    // operator can fix it. The answer names the variable and the rule,
    // never the value.
    if let Err(rule) = users::check_admin_password(&admin_email, &admin_password) {
        eprintln!("users: the admin account is not created: the variable admin_password {rule}");
        return Err(Problem::internal(format!(
            "the admin account is not available: the variable `admin_password` {rule} \
             (the operator must set another)"
        )));
    }
    if db.user_by_email(email).await?.is_some() {
        return Ok(());
    }
    let hash = password::hash(&admin_password).map_err(Problem::internal)?;
    let created = db
        .transaction(async |db| {
            let user = db
                .insert_user(email, "Administrator", &hash, Role::Admin)
                .await?;
            db.record(&user.id, &registered(&user)).await
        })
        .await;
    match created {
        // Another first login created it meanwhile.
        Err(DomainError::Conflict(_)) => Ok(()),
        other => Ok(other?),
    }
}

async fn signer() -> Result<Signer, Problem> {
    let ttl: i64 = variable("jwt_ttl_secs")
        .await?
        .parse()
        .map_err(|_| Problem::internal("jwt_ttl_secs is not a number"))?;
    Signer::new(
        &variable("jwt_private_key").await?,
        &variable("jwt_key_id").await?,
        &variable("jwt_issuer").await?,
        ttl,
    )
    .map_err(|e| {
        eprintln!("users: {e}");
        Problem::internal("token signing is misconfigured")
    })
}

/// The caller, from a verified token whose version is still current.
async fn current_user(request: &Request, db: &Db) -> Result<User, Problem> {
    let claims = mart_guest::auth::authenticate(request).await?;
    let user = db
        .user_by_id(&claims.sub)
        .await?
        .ok_or_else(|| auth::unauthorized("the account no longer exists"))?;
    if user.token_version != claims.ver {
        return Err(auth::unauthorized(
            "the token was revoked by a password change; log in again",
        ));
    }
    Ok(user)
}

async fn me(request: &Request) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    Ok(json_response(
        200,
        &current_user(request, &db).await?.profile(),
    ))
}

async fn update_me(request: &Request) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    let user = current_user(request, &db).await?;
    let update: ProfileUpdate = json_body(request, MAX_BODY_BYTES)?;
    let mut errors = Vec::new();
    let name = update.name.map(|n| n.trim().to_string());
    if let Some(name) = &name {
        if let Err(e) = users::check_name(name) {
            errors.push(e);
        }
    }
    let new_hash = match &update.password {
        None => None,
        Some(new_password) => {
            // Guessing the current password is throttled as logins are.
            let client = client_of(request).await;
            if let Some(wait) = db.take_login_attempt(&user.email, &client).await? {
                return Ok(too_many_attempts(wait));
            }
            let current = update.current_password.as_deref().unwrap_or_default();
            if !check_attempt(&db, &user.email, &client, current, &user.password_hash).await? {
                errors.push(FieldError::new(
                    "current_password",
                    "must be your current password",
                ));
            }
            if let Err(e) = password::check_policy(new_password, &user.email) {
                errors.push(e);
            }
            Some(password::hash(new_password).map_err(Problem::internal)?)
        }
    };
    if name.is_none() && new_hash.is_none() {
        errors.push(FieldError::new(
            "body",
            "give `name`, or `password` with `current_password`",
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let updated = db
        .transaction(async |db| -> Result<_, DomainError> {
            let updated = db
                .update_profile(&user.id, name.as_deref(), new_hash.as_deref())
                .await?;
            if new_hash.is_some() {
                // Their token version no longer matches either; gone for good.
                db.revoke_refresh_tokens(&user.id).await?;
            }
            Ok(updated)
        })
        .await?;
    Ok(json_response(200, &updated.profile()))
}

async fn get_user(request: &Request, id: &str) -> Result<Response, Problem> {
    mart_guest::auth::require_admin(request).await?;
    let db = Db::connect().await?;
    let id = db::parse_id(id).ok_or_else(|| Problem::not_found(format!("no user has id {id}")))?;
    match db.user_by_id(&id).await? {
        Some(user) => Ok(json_response(200, &user.profile())),
        None => Err(Problem::not_found(format!("no user has id {id}"))),
    }
}
