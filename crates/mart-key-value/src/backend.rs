//! Where a store's keys live. Both backends are opened on first use and
//! shared by every instance.

use std::path::PathBuf;

use mart_sqlite::{Connection, Database, Location, SqlValue, SqliteError};
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;
use tokio::sync::OnceCell;

/// Spin's table (`crates/key-value-spin`), so a file written by `spin up`
/// reads the same here and back.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

/// A backend failure, as the interface's `other` error carries it.
pub type BackendError = String;

pub enum Backend {
    /// Spin's `spin` type: a SQLite file, or memory when no path is set.
    Sqlite(SqliteStore),
    /// Spin's `redis` type. As in Spin, keys are not prefixed by label:
    /// two labels on one server share their keys.
    Redis(RedisStore),
}

impl Backend {
    pub fn sqlite(path: Option<PathBuf>) -> Self {
        Backend::Sqlite(SqliteStore {
            location: path.map_or(Location::InMemory, Location::File),
            connection: OnceCell::new(),
        })
    }

    pub fn redis(url: String) -> Self {
        Backend::Redis(RedisStore {
            url,
            connection: OnceCell::new(),
        })
    }

    /// Connects (once) so that `open` reports an unreachable backend.
    pub async fn ready(&self) -> Result<(), BackendError> {
        match self {
            Backend::Sqlite(s) => s.connection().await.map(drop),
            Backend::Redis(r) => r.connection().await.map(drop),
        }
    }

    pub async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        match self {
            Backend::Sqlite(s) => {
                let rows = s
                    .sql(
                        "SELECT value FROM spin_key_value WHERE store = ? AND key = ?",
                        [store, key],
                    )
                    .await?;
                Ok(rows.into_iter().next().and_then(|mut row| match row.pop() {
                    Some(SqlValue::Blob(value)) => Some(value),
                    _ => None,
                }))
            }
            Backend::Redis(r) => r.connection().await?.get(key).await.map_err(text),
        }
    }

    pub async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        match self {
            Backend::Sqlite(s) => {
                let statement =
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) \
                                 ON CONFLICT (store, key) DO UPDATE SET value = ?3";
                let params = vec![text_value(store), text_value(key), SqlValue::Blob(value)];
                let connection = s.connection().await?;
                connection
                    .execute(statement.into(), params)
                    .await
                    .map(drop)
                    .map_err(text)
            }
            Backend::Redis(r) => r.connection().await?.set(key, value).await.map_err(text),
        }
    }

    pub async fn delete(&self, store: &str, key: &str) -> Result<(), BackendError> {
        match self {
            Backend::Sqlite(s) => s
                .sql(
                    "DELETE FROM spin_key_value WHERE store = ? AND key = ?",
                    [store, key],
                )
                .await
                .map(drop),
            Backend::Redis(r) => r.connection().await?.del(key).await.map_err(text),
        }
    }

    pub async fn exists(&self, store: &str, key: &str) -> Result<bool, BackendError> {
        match self {
            Backend::Sqlite(s) => Ok(!s
                .sql(
                    "SELECT 1 FROM spin_key_value WHERE store = ? AND key = ?",
                    [store, key],
                )
                .await?
                .is_empty()),
            Backend::Redis(r) => r.connection().await?.exists(key).await.map_err(text),
        }
    }

    pub async fn keys(&self, store: &str) -> Result<Vec<String>, BackendError> {
        match self {
            Backend::Sqlite(s) => Ok(s
                .sql("SELECT key FROM spin_key_value WHERE store = ?", [store])
                .await?
                .into_iter()
                .filter_map(|mut row| match row.pop() {
                    Some(SqlValue::Text(key)) => Some(key),
                    _ => None,
                })
                .collect()),
            Backend::Redis(r) => r.connection().await?.keys("*").await.map_err(text),
        }
    }
}

pub struct SqliteStore {
    location: Location,
    connection: OnceCell<Connection>,
}

impl SqliteStore {
    async fn connection(&self) -> Result<&Connection, BackendError> {
        self.connection
            .get_or_try_init(|| async {
                let database = Database {
                    location: self.location.clone(),
                    allow_attach_file: false,
                };
                let connection = Connection::open_shared(&database).await?;
                connection.execute(SCHEMA.into(), vec![]).await?;
                Ok::<_, SqliteError>(connection)
            })
            .await
            .map_err(text)
    }

    /// Runs a statement whose parameters are all text, returning its rows.
    async fn sql<const N: usize>(
        &self,
        statement: &str,
        params: [&str; N],
    ) -> Result<Vec<Vec<SqlValue>>, BackendError> {
        let params = params.into_iter().map(text_value).collect();
        let output = self
            .connection()
            .await?
            .execute(statement.into(), params)
            .await;
        output.map(|o| o.rows).map_err(text)
    }
}

pub struct RedisStore {
    url: String,
    /// Reconnects by itself: a server that was briefly away costs the
    /// calls made meanwhile, not every later one.
    connection: OnceCell<ConnectionManager>,
}

impl RedisStore {
    async fn connection(&self) -> Result<ConnectionManager, BackendError> {
        self.connection
            .get_or_try_init(|| mart_outbound_redis::connect_managed(&self.url))
            .await
            .cloned()
            .map_err(text)
    }
}

fn text_value(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

fn text(error: impl std::fmt::Display) -> BackendError {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sqlite_store_keeps_keys_per_label_in_spins_file_format() {
        let file = std::env::temp_dir().join(format!("mart-kv-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let backend = Backend::sqlite(Some(file.clone()));
        backend.set("default", "k", b"one".to_vec()).await.unwrap();
        backend.set("default", "k", b"two".to_vec()).await.unwrap();
        backend
            .set("other", "k", b"elsewhere".to_vec())
            .await
            .unwrap();
        assert_eq!(
            backend.get("default", "k").await.unwrap(),
            Some(b"two".to_vec())
        );
        assert!(backend.exists("default", "k").await.unwrap());
        assert_eq!(backend.keys("default").await.unwrap(), ["k"]);
        backend.delete("default", "k").await.unwrap();
        assert_eq!(backend.get("default", "k").await.unwrap(), None);
        assert!(!backend.exists("default", "k").await.unwrap());
        assert_eq!(
            backend.get("other", "k").await.unwrap(),
            Some(b"elsewhere".to_vec())
        );
        // The file is Spin's: its table and columns, readable by any SQLite.
        let Backend::Sqlite(raw) = Backend::sqlite(Some(file.clone())) else {
            unreachable!()
        };
        let rows = raw
            .sql("SELECT store, key FROM spin_key_value ORDER BY store", [])
            .await
            .unwrap();
        assert_eq!(rows, vec![vec![text_value("other"), text_value("k")]]);
        let _ = std::fs::remove_file(file);
    }
}
