//! Where a store's keys live. Both backends are opened on first use and
//! shared by every instance.

use std::path::PathBuf;

use mart_sqlite::{Connection, Database, Location, SqlValue, SqliteError};
use redis::aio::{ConnectionManager, MultiplexedConnection};
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

impl Backend {
    /// Each key asked for with its value, none where the key is absent
    /// (wasi:keyvalue's `get-many`).
    pub async fn get_many(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Backend::Sqlite(s) => {
                let store = store.to_string();
                s.transaction(move |t| {
                    keys.into_iter()
                        .map(|key| {
                            let value = read(t, &store, &key)?;
                            Ok((key, value))
                        })
                        .collect()
                })
                .await
            }
            Backend::Redis(r) => {
                let values: Vec<Option<Vec<u8>>> =
                    r.connection().await?.mget(&keys).await.map_err(text)?;
                Ok(keys.into_iter().zip(values).collect())
            }
        }
    }

    /// Sets every pair; on SQLite all or none.
    pub async fn set_many(
        &self,
        store: &str,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), BackendError> {
        if pairs.is_empty() {
            return Ok(());
        }
        match self {
            Backend::Sqlite(s) => {
                let store = store.to_string();
                s.transaction(move |t| {
                    pairs
                        .into_iter()
                        .try_for_each(|(key, value)| write(t, &store, &key, &value))
                })
                .await
            }
            Backend::Redis(r) => r.connection().await?.mset(&pairs).await.map_err(text),
        }
    }

    pub async fn delete_many(&self, store: &str, keys: Vec<String>) -> Result<(), BackendError> {
        if keys.is_empty() {
            return Ok(());
        }
        match self {
            Backend::Sqlite(s) => {
                let store = store.to_string();
                s.transaction(move |t| {
                    keys.iter().try_for_each(|key| {
                        t.execute(
                            "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                            (&store, key),
                        )?;
                        Ok(())
                    })
                })
                .await
            }
            Backend::Redis(r) => r.connection().await?.del(&keys).await.map_err(text),
        }
    }

    /// Adds `delta` to the key's number (an absent key counts as 0) and
    /// returns the sum. The number is kept as Spin keeps it, so either host
    /// reads the other's counters: 8 bytes little-endian in a SQLite store,
    /// Redis's own decimal text (INCRBY) in a Redis one.
    pub async fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        match self {
            Backend::Sqlite(s) => {
                let (store, key) = (store.to_string(), key.to_string());
                s.transaction(move |t| {
                    let current = match read(t, &store, &key)? {
                        None => 0,
                        Some(bytes) => counter(&bytes).map_err(SqliteError::Io)?,
                    };
                    let sum = current.checked_add(delta).ok_or_else(|| {
                        SqliteError::Io(format!("{current} + {delta} overflows a 64-bit integer"))
                    })?;
                    write(t, &store, &key, &sum.to_le_bytes())?;
                    Ok(sum)
                })
                .await
            }
            Backend::Redis(r) => r.connection().await?.incr(key, delta).await.map_err(text),
        }
    }

    /// Reads the key for a compare-and-swap, returning its value and what
    /// `swap` later compares against.
    pub async fn watch(
        &self,
        store: &str,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, Watch), BackendError> {
        match self {
            Backend::Sqlite(_) => {
                let value = self.get(store, key).await?;
                Ok((value.clone(), Watch::Sqlite(value)))
            }
            Backend::Redis(r) => {
                // WATCH holds per connection: a connection of the swap's own,
                // which the shared (multiplexed) one is not.
                let mut connection = r.dedicated().await?;
                redis::cmd("WATCH")
                    .arg(key)
                    .exec_async(&mut connection)
                    .await
                    .map_err(text)?;
                let value: Option<Vec<u8>> = connection.get(key).await.map_err(text)?;
                Ok((value, Watch::Redis(Box::new(connection))))
            }
        }
    }

    /// Sets the key to `value` if it still holds what `watch` read; an
    /// unwatched swap sets it unconditionally (as Spin does). Returns
    /// whether the value was set.
    pub async fn swap(
        &self,
        store: &str,
        key: &str,
        watch: Option<Watch>,
        value: Vec<u8>,
    ) -> Result<bool, BackendError> {
        match (self, watch) {
            (_, None) => self.set(store, key, value).await.map(|()| true),
            (Backend::Sqlite(s), Some(Watch::Sqlite(seen))) => {
                let (store, key) = (store.to_string(), key.to_string());
                s.transaction(move |t| {
                    let changed = match seen {
                        Some(old) => t.execute(
                            "UPDATE spin_key_value SET value = ?4 \
                             WHERE store = ?1 AND key = ?2 AND value = ?3",
                            (&store, &key, old, &value),
                        )?,
                        None => t.execute(
                            "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (store, key) DO NOTHING",
                            (&store, &key, &value),
                        )?,
                    };
                    Ok(changed == 1)
                })
                .await
            }
            (Backend::Redis(_), Some(Watch::Redis(mut connection))) => {
                // EXEC answers nil when a watched key changed since WATCH.
                let outcome: redis::Value = redis::pipe()
                    .atomic()
                    .set(key, value)
                    .query_async(&mut *connection)
                    .await
                    .map_err(text)?;
                Ok(!matches!(outcome, redis::Value::Nil))
            }
            _ => Err("a compare-and-swap read by another store's backend".into()),
        }
    }
}

/// What a compare-and-swap read, for `swap` to compare against.
pub enum Watch {
    /// The value the key held (none: absent).
    Sqlite(Option<Vec<u8>>),
    /// The connection that WATCHes the key.
    Redis(Box<MultiplexedConnection>),
}

/// A counter as Spin's SQLite store keeps it: 8 bytes, little-endian.
fn counter(bytes: &[u8]) -> Result<i64, String> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        format!(
            "the value is not a counter: {} bytes, a counter has 8 (little-endian)",
            bytes.len()
        )
    })?;
    Ok(i64::from_le_bytes(bytes))
}

fn read(
    t: &rusqlite::Transaction<'_>,
    store: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, SqliteError> {
    let mut statement =
        t.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
    let mut rows = statement.query((store, key))?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

fn write(
    t: &rusqlite::Transaction<'_>,
    store: &str,
    key: &str,
    value: &[u8],
) -> Result<(), SqliteError> {
    t.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (store, key) DO UPDATE SET value = ?3",
    )?
    .execute((store, key, value))?;
    Ok(())
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

    async fn transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, BackendError> {
        self.connection()
            .await?
            .transaction(work)
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

    /// A connection of its own, for commands whose state is the
    /// connection's (WATCH), with the host's Redis timeouts.
    async fn dedicated(&self) -> Result<MultiplexedConnection, BackendError> {
        mart_outbound_redis::connect(&self.url).await.map_err(text)
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

    #[tokio::test(flavor = "multi_thread")]
    async fn counters_batches_and_swaps_on_a_sqlite_store() {
        let backend = Backend::sqlite(None);
        assert_eq!(backend.increment("s", "n", 5).await, Ok(5));
        assert_eq!(backend.increment("s", "n", -7).await, Ok(-2));
        // Spin's format: 8 bytes little-endian.
        let stored = backend.get("s", "n").await.unwrap();
        assert_eq!(stored, Some((-2i64).to_le_bytes().to_vec()));
        backend.set("s", "n", b"two".to_vec()).await.unwrap();
        let refused = backend.increment("s", "n", 1).await.unwrap_err();
        assert!(refused.contains("not a counter: 3 bytes"), "{refused}");
        assert!(backend.increment("s", "max", i64::MAX).await.is_ok());
        assert!(backend.increment("s", "max", 1).await.is_err(), "overflow");

        let pairs = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".into(), b"2".to_vec()),
        ];
        backend.set_many("s", pairs).await.unwrap();
        let keys = vec!["a".to_string(), "absent".into(), "b".into()];
        let got = backend.get_many("s", keys.clone()).await.unwrap();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), Some(b"1".to_vec())),
                ("absent".into(), None),
                ("b".into(), Some(b"2".to_vec())),
            ]
        );
        backend.delete_many("s", keys).await.unwrap();
        assert_eq!(backend.get("s", "a").await, Ok(None));

        // A swap compares with what was read: a change since fails it.
        let (read, watch) = backend.watch("s", "k").await.unwrap();
        assert_eq!(read, None);
        backend.set("s", "k", b"theirs".to_vec()).await.unwrap();
        assert_eq!(
            backend.swap("s", "k", Some(watch), b"mine".to_vec()).await,
            Ok(false)
        );
        let (read, watch) = backend.watch("s", "k").await.unwrap();
        assert_eq!(read, Some(b"theirs".to_vec()));
        assert_eq!(
            backend.swap("s", "k", Some(watch), b"mine".to_vec()).await,
            Ok(true)
        );
        assert_eq!(backend.get("s", "k").await, Ok(Some(b"mine".to_vec())));
    }
}
