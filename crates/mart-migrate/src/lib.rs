//! Database migrations.
//!
//! `migrations/<database>/<version>_<name>.sql`: each folder is one service's
//! database, created if missing; its files are applied in version order, each
//! in its own transaction together with its row in `mart_migrations`. An
//! advisory lock makes concurrent runs (two hosts starting at once) safe, and
//! a checksum refuses a migration that was edited after it was applied.
//!
//! Each database is its service's alone: after its migrations, the role
//! `mart_<database>` (created, without a password, if the operator has not
//! created it) may connect to it and read and write its tables, nothing
//! more (no DDL, not the migration records), and no other role but the
//! migrating one may connect to it at all. A component holding the
//! catalog's credentials cannot open the users database.
//!
//! The outbox relay connects as `mart_relay` (created likewise): in every
//! database it may read and mark the outbox and prune the processed-events
//! record, and nothing else, so the process that relays holds neither the
//! owner's power over the schema nor any service's data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

/// Arbitrary, fixed: the advisory lock every migrator takes.
const LOCK_KEY: i64 = 0x6d61_7274_6d69_6772; // "martmigr"

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    pub path: PathBuf,
    pub sql: String,
    pub checksum: String,
}

/// What one run did to one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub database: String,
    pub created: bool,
    pub applied: Vec<String>,
}

/// The migrations of every database under `root`, sorted by version.
pub fn discover(root: &Path) -> anyhow::Result<Vec<(String, Vec<Migration>)>> {
    let mut databases = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let database = entry.file_name().to_string_lossy().to_string();
        check_identifier(&database)?;
        databases.push((database, read_migrations(&entry.path())?));
    }
    databases.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(databases)
}

fn read_migrations(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let version = stem
            .split_once('_')
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
            .with_context(|| format!("{}: name must be <digits>_<name>.sql", path.display()))?
            .to_string();
        let sql = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        migrations.push(Migration {
            version,
            path,
            sql,
            checksum,
        });
    }
    migrations.sort_by(|a, b| a.version.cmp(&b.version));
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        bail!(
            "two migrations share version {} in {}",
            pair[0].version,
            dir.display()
        );
    }
    Ok(migrations)
}

fn check_identifier(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("database folder `{name}` must be a lower-case identifier");
    }
    Ok(())
}

/// The URL of `database` on the same server as `server_url`.
pub fn database_url(server_url: &str, database: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(server_url).context("the database URL is not a valid URL")?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection closed");
        }
    });
    Ok(client)
}

/// Shows a URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Creates each database if needed and applies what is pending.
/// `server_url` points at a database that exists (e.g. `postgres`).
pub async fn migrate(server_url: &str, root: &Path) -> anyhow::Result<Vec<Report>> {
    let admin = connect(server_url).await?;
    let mut reports = Vec::new();
    for (database, migrations) in discover(root)? {
        let created = ensure_database(&admin, &database).await?;
        let client = connect(&database_url(server_url, &database)?).await?;
        ensure_role(&admin, &service_role(&database)).await?;
        ensure_role(&admin, RELAY_ROLE).await?;
        let applied = apply(&client, &database, &migrations).await?;
        reports.push(Report {
            database,
            created,
            applied,
        });
    }
    Ok(reports)
}

/// Runs `work` while holding the migrators' advisory lock on `client`'s
/// database (advisory locks are per database).
async fn under_lock<T>(
    client: &Client,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = work.await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn ensure_database(admin: &Client, database: &str) -> anyhow::Result<bool> {
    // Identifiers cannot be parameters; `database` was checked to be a
    // plain lower-case identifier by `discover`.
    let create = format!("CREATE DATABASE \"{database}\"");
    ensure(
        admin,
        "SELECT 1 FROM pg_database WHERE datname = $1",
        database,
        &create,
    )
    .await
    .with_context(|| format!("creating database `{database}`"))
}

/// Runs `create` unless `exists` (a query taking `name`) finds a row, under
/// the migrators' lock; whether it created it.
async fn ensure(admin: &Client, exists: &str, name: &str, create: &str) -> anyhow::Result<bool> {
    under_lock(admin, async {
        let found = admin.query_opt(exists, &[&name]).await?.is_some();
        if !found {
            admin.batch_execute(create).await?;
        }
        Ok(!found)
    })
    .await
}

/// The role the outbox relay connects as (see the module doc).
pub const RELAY_ROLE: &str = "mart_relay";

/// The role a service's components use for `database`.
pub fn service_role(database: &str) -> String {
    format!("mart_{database}")
}

/// Creates `role` if the operator has not. No password: where the server
/// asks for one, an operator sets it (docker compose's init script creates
/// the roles with theirs).
async fn ensure_role(admin: &Client, role: &str) -> anyhow::Result<()> {
    // `role` derives from a database folder checked by `discover`.
    let create = format!("CREATE ROLE \"{role}\" LOGIN");
    ensure(
        admin,
        "SELECT 1 FROM pg_roles WHERE rolname = $1",
        role,
        &create,
    )
    .await
    .with_context(|| format!("creating role `{role}`"))?;
    Ok(())
}

/// Gives `database` to its service's role alone (see the module doc), on
/// every run, so tables added by new migrations are granted too.
async fn grant_service_role(client: &Client, database: &str) -> anyhow::Result<()> {
    let role = service_role(database);
    client
        .batch_execute(&format!(
            "REVOKE ALL ON DATABASE \"{database}\" FROM PUBLIC;
             GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\";
             REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO \"{role}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\";
             REVOKE ALL ON mart_migrations FROM \"{role}\";
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO \"{role}\";"
        ))
        .await
        .with_context(|| format!("granting `{database}` to `{role}`"))
}

/// Lets the relay reach `database`'s outbox (read, mark sent, delete what
/// was sent long ago) and prune its processed-events record, where the
/// database has them. Deleting rows needs SELECT for their WHERE clause.
async fn grant_relay_role(client: &Client, database: &str) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE \"{database}\" TO {RELAY_ROLE};
             GRANT USAGE ON SCHEMA public TO {RELAY_ROLE};
             DO $$ BEGIN
               IF to_regclass('outbox') IS NOT NULL THEN
                 GRANT SELECT, UPDATE (sent_at), DELETE ON outbox TO {RELAY_ROLE};
               END IF;
               IF to_regclass('processed_events') IS NOT NULL THEN
                 GRANT SELECT, DELETE ON processed_events TO {RELAY_ROLE};
               END IF;
             END $$;"
        ))
        .await
        .with_context(|| format!("granting `{database}`'s outbox to `{RELAY_ROLE}`"))
}

async fn apply(
    client: &Client,
    database: &str,
    migrations: &[Migration],
) -> anyhow::Result<Vec<String>> {
    under_lock(client, async {
        let applied = apply_locked(client, database, migrations).await?;
        // Under the same lock: concurrent GRANTs on one object can fail
        // ("tuple concurrently updated").
        grant_service_role(client, database).await?;
        grant_relay_role(client, database).await?;
        Ok(applied)
    })
    .await
}

async fn apply_locked(
    client: &Client,
    database: &str,
    migrations: &[Migration],
) -> anyhow::Result<Vec<String>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS mart_migrations (
                version text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let done: std::collections::HashSet<String> = client
        .query("SELECT version FROM mart_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let pending = migrations
        .iter()
        .filter(|m| !done.contains(&m.version))
        .count();
    let mut applied = Vec::new();
    for migration in migrations {
        let row = client
            .query_opt(
                "SELECT checksum FROM mart_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await?;
        if let Some(row) = row {
            let recorded: String = row.get(0);
            if recorded != migration.checksum {
                bail!(
                    "{}: {} was changed after it was applied; add a new migration instead",
                    database,
                    migration.path.display()
                );
            }
            continue;
        }
        if let Err(e) = apply_one(client, migration).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e)
                .with_context(|| format!("{database}: applying {}", migration.path.display()));
        }
        tracing::info!(
            database,
            version = %migration.version,
            progress = format!("{}/{}", applied.len() + 1, pending),
            "migration applied"
        );
        applied.push(migration.version.clone());
    }
    Ok(applied)
}

/// One migration and its record, in one transaction.
async fn apply_one(client: &Client, migration: &Migration) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    client.batch_execute(&migration.sql).await?;
    client
        .execute(
            "INSERT INTO mart_migrations (version, checksum) VALUES ($1, $2)",
            &[&migration.version, &migration.checksum],
        )
        .await?;
    client.batch_execute("COMMIT").await
}

/// Whether every migration under `root` is applied (for readiness checks).
pub async fn is_up_to_date(server_url: &str, root: &Path) -> anyhow::Result<bool> {
    for (database, migrations) in discover(root)? {
        let client = connect(&database_url(server_url, &database)?).await?;
        let count: i64 = client
            .query_one("SELECT count(*) FROM mart_migrations", &[])
            .await?
            .get(0);
        if usize::try_from(count).unwrap_or(0) < migrations.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_sorted_and_validates_names() {
        let dir = std::env::temp_dir().join(format!("mart-migrate-{}", std::process::id()));
        let db = dir.join("catalog");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("0002_more.sql"), "SELECT 2;").unwrap();
        std::fs::write(db.join("0001_init.sql"), "SELECT 1;").unwrap();
        std::fs::write(db.join("README.md"), "ignored").unwrap();
        let found = discover(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "catalog");
        let versions: Vec<_> = found[0].1.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(versions, ["0001", "0002"]);
        std::fs::write(db.join("x_bad.sql"), "").unwrap();
        assert!(discover(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn database_url_swaps_the_path_and_redacts() {
        assert_eq!(
            database_url("postgres://u:p@127.0.0.1:5433/postgres", "catalog").unwrap(),
            "postgres://u:p@127.0.0.1:5433/catalog"
        );
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u:***@h/db");
    }
}
