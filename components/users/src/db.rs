//! The users database: every statement parameterised.

use mart_domain::auth::Role;
use mart_domain::{users, DomainError};
use mart_guest::db::{self as pg, decode, sql_state, text, timestamp, uuid_text};
use mart_guest::db::{DbValue, ParameterValue};
use serde::Serialize;

pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub token_version: i64,
    pub created_at: String,
}

/// What the API shows of a user: never the hash.
#[derive(Serialize)]
pub struct Profile<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub role: &'static str,
    pub created_at: &'a str,
}

impl User {
    pub fn profile(&self) -> Profile<'_> {
        Profile {
            id: &self.id,
            email: &self.email,
            name: &self.name,
            role: self.role.as_str(),
            created_at: &self.created_at,
        }
    }
}

// Timestamps as UTC `timestamp`: Spin 4.0.x cannot return `timestamptz` (see mart_domain::sql).
const COLUMNS: &str =
    "id, email, name, password_hash, role, token_version, (created_at AT TIME ZONE 'UTC') AS created_at";

mart_guest::service_database!(pub struct Db("users"));

pub use mart_domain::parse_uuid as parse_id;

fn failed(e: impl std::fmt::Display) -> DomainError {
    pg::failed("users", e)
}

impl Db {
    pub async fn insert_user(
        &self,
        email: &str,
        name: &str,
        hash: &str,
        role: Role,
    ) -> Result<User, DomainError> {
        let sql = format!(
            "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        );
        let rows = self
            .connection
            .query(
                &sql,
                &[text(email), text(name), text(hash), text(role.as_str())],
            )
            .await
            .map_err(|e| {
                if sql_state(&e) == Some("23505") {
                    DomainError::conflict("an account with this email already exists")
                } else {
                    failed(e)
                }
            })?;
        first_user(&rows.rows)?.ok_or_else(|| DomainError::internal("the insert returned no row"))
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, DomainError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        let rows = self
            .connection
            .query(&sql, &[text(email)])
            .await
            .map_err(failed)?;
        first_user(&rows.rows)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, DomainError> {
        let Some(id) = parse_id(id) else {
            return Ok(None);
        };
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let rows = self
            .connection
            .query(&sql, &[ParameterValue::Uuid(id)])
            .await
            .map_err(failed)?;
        first_user(&rows.rows)
    }

    /// Changes the name and/or password; a new password revokes old tokens.
    pub async fn update_profile(
        &self,
        id: &str,
        name: Option<&str>,
        hash: Option<&str>,
    ) -> Result<User, DomainError> {
        let sql = format!(
            "UPDATE users SET name = coalesce($2, name),
                    password_hash = coalesce($3, password_hash),
                    token_version = token_version + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END,
                    updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let param = |v: Option<&str>| v.map_or(ParameterValue::DbNull, text);
        let rows = self
            .connection
            .query(
                &sql,
                &[
                    ParameterValue::Uuid(id.to_string()),
                    param(name),
                    param(hash),
                ],
            )
            .await
            .map_err(failed)?;
        first_user(&rows.rows)?
            .ok_or_else(|| DomainError::not_found("the account no longer exists"))
    }

    /// Stores a refresh token's hash for `user_id` at `version`, valid for
    /// `ttl_secs`; the user's expired ones go meanwhile.
    pub async fn insert_refresh_token(
        &self,
        hash: &str,
        user_id: &str,
        version: i64,
        ttl_secs: i64,
    ) -> Result<(), DomainError> {
        let user = ParameterValue::Uuid(user_id.to_string());
        self.connection
            .execute(
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at < now()",
                std::slice::from_ref(&user),
            )
            .await
            .map_err(failed)?;
        self.connection
            .execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, token_version, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4::int8))",
                &[
                    text(hash),
                    user,
                    ParameterValue::Int64(version),
                    ParameterValue::Int64(ttl_secs),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Uses up the refresh token with this hash: the user and token version
    /// it was issued for, unless it is unknown, used or expired.
    pub async fn take_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(String, i64)>, DomainError> {
        let rows = self
            .connection
            .query(
                "DELETE FROM refresh_tokens WHERE token_hash = $1 \
                 RETURNING user_id, token_version, expires_at > now()",
                &[text(hash)],
            )
            .await
            .map_err(failed)?;
        let Some([user, version, live]) = rows.rows.first().map(Vec::as_slice) else {
            return Ok(None);
        };
        let live: bool = decode(live)?;
        live.then(|| Ok((uuid_text(user)?, decode(version)?)))
            .transpose()
    }

    /// Every refresh token of `user_id` (its password changed).
    pub async fn revoke_refresh_tokens(&self, user_id: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "DELETE FROM refresh_tokens WHERE user_id = $1",
                &[ParameterValue::Uuid(user_id.to_string())],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Takes one password attempt for `email` from `client`: `Some(wait)`
    /// (seconds) while the delay after earlier failures runs, else `None`
    /// with the attempt already counted as a failure, which a correct
    /// password then clears (`clear_login_attempts`) and a wrong one dates
    /// from its end (`restart_login_delay`). Taken under the row's
    /// lock, so parallel guesses are each counted. Times are the clock's,
    /// not the transaction's start (`now()`), which a parallel attempt may
    /// have passed while this one waited for the lock.
    pub async fn take_login_attempt(
        &self,
        email: &str,
        client: &str,
    ) -> Result<Option<i64>, DomainError> {
        self.transaction(async |db| {
            let key = [text(email), text(client)];
            // One statement that creates or locks the row: a parallel
            // success may delete it at any moment, and an upsert retries
            // where an insert-then-select would find nothing.
            let rows = db
                .connection
                .query(
                    "INSERT INTO login_throttle AS t (email, client, failures, last_failure_at) \
                     VALUES ($1, $2, 0, clock_timestamp()) \
                     ON CONFLICT (email, client) DO UPDATE SET failures = t.failures \
                     RETURNING failures, \
                       floor(extract(epoch FROM clock_timestamp() - last_failure_at))::int8",
                    &key,
                )
                .await
                .map_err(failed)?;
            let row = rows
                .rows
                .first()
                .ok_or_else(|| failed("the throttle upsert returned no row"))?;
            let failures: i32 = decode(&row[0])?;
            let elapsed: i64 = decode(&row[1])?;
            let wait = users::login_wait_secs(u32::try_from(failures).unwrap_or(0), elapsed);
            if wait > 0 {
                return Ok(Some(wait));
            }
            db.connection
                .execute(
                    "UPDATE login_throttle SET failures = failures + 1, last_failure_at = clock_timestamp() \
                     WHERE email = $1 AND client = $2",
                    &key,
                )
                .await
                .map_err(failed)?;
            Ok(None)
        })
        .await
    }

    /// A wrong password: the delay before this client's next attempt for
    /// `email` runs from now.
    pub async fn restart_login_delay(&self, email: &str, client: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE login_throttle SET last_failure_at = clock_timestamp() \
                 WHERE email = $1 AND client = $2",
                &[text(email), text(client)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// A correct password: this client's failures for `email` are forgotten.
    pub async fn clear_login_attempts(&self, email: &str, client: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "DELETE FROM login_throttle WHERE email = $1 AND client = $2",
                &[text(email), text(client)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }
}

fn first_user(rows: &[Vec<DbValue>]) -> Result<Option<User>, DomainError> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let [id, email, name, hash, role, version, created_at] = row.as_slice() else {
        return Err(failed(format!("expected 7 columns, got {}", row.len())));
    };
    let role: String = decode(role)?;
    Ok(Some(User {
        id: uuid_text(id)?,
        email: decode(email)?,
        name: decode(name)?,
        password_hash: decode(hash)?,
        role: Role::parse(&role).ok_or_else(|| failed(format!("unknown role {role}")))?,
        token_version: decode(version)?,
        created_at: timestamp(created_at)?,
    }))
}
