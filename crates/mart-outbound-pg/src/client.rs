use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use mart_outbound_networking::{AllowedHosts, OutboundTarget};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::txn::TxnTracker;

/// Which trigger an instance runs for. Each kind has pools of its own, so
/// load on the API never takes the connections the saga's handlers and the
/// timers need (and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    Http,
    Kafka,
    Timer,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Http => "http",
            TriggerKind::Kafka => "kafka",
            TriggerKind::Timer => "timer",
        }
    }
}

/// Pool limits of one trigger kind, the same for every address.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long `open` waits for a free connection before failing.
    pub wait_timeout: Duration,
}

impl PoolSettings {
    fn with_size(max_size: usize) -> Self {
        Self {
            max_size,
            wait_timeout: Duration::from_secs(5),
        }
    }
}

/// Connections per address for each trigger kind.
#[derive(Debug, Clone, Copy)]
pub struct PoolBudgets {
    pub http: PoolSettings,
    pub kafka: PoolSettings,
    pub timer: PoolSettings,
}

impl Default for PoolBudgets {
    /// 18 connections per database in all: the API's requests, the Kafka
    /// handlers (4 invocations at once per trigger by default, with room
    /// for a second handler on the same database) and the timers.
    fn default() -> Self {
        Self {
            http: PoolSettings::with_size(10),
            kafka: PoolSettings::with_size(6),
            timer: PoolSettings::with_size(2),
        }
    }
}

impl PoolBudgets {
    fn of(&self, kind: TriggerKind) -> PoolSettings {
        match kind {
            TriggerKind::Http => self.http,
            TriggerKind::Kafka => self.kafka,
            TriggerKind::Timer => self.timer,
        }
    }
}

/// A pool and its label for metrics (the address without credentials).
type LabelledPool = (String, Pool);

/// One pool per trigger kind and connection address, created on first use
/// and shared by the instances of that kind.
pub struct PgPools {
    budgets: PoolBudgets,
    /// kind -> address -> pool; looked up by `&str` on every open, without
    /// allocating.
    pools: Mutex<HashMap<TriggerKind, HashMap<String, LabelledPool>>>,
}

impl PgPools {
    pub fn new(budgets: PoolBudgets) -> Self {
        Self {
            budgets,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pool_for(
        &self,
        kind: TriggerKind,
        address: &str,
        config: tokio_postgres::Config,
    ) -> Result<Pool, String> {
        let mut pools = self.pools.lock().expect("pg pool map poisoned");
        let of_kind = pools.entry(kind).or_default();
        if let Some((_, pool)) = of_kind.get(address) {
            return Ok(pool.clone());
        }
        let settings = self.budgets.of(kind);
        let label = pool_label(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // `Fast` checks the socket only; transactions left open are
                // handled by `Connection`'s drop, see txn.rs.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.wait_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())?;
        of_kind.insert(address.to_string(), (label, pool.clone()));
        Ok(pool)
    }

    /// `(pool label, trigger kind, open connections, idle connections)` for
    /// every pool.
    pub fn status(&self) -> Vec<(String, TriggerKind, usize, usize)> {
        let pools = self.pools.lock().expect("pg pool map poisoned");
        pools
            .iter()
            .flat_map(|(kind, of_kind)| {
                of_kind.values().map(|(label, pool)| {
                    let status = pool.status();
                    (label.clone(), *kind, status.size, status.available)
                })
            })
            .collect()
    }

    /// Checks `address` against the component's allowed hosts, then takes a
    /// pooled connection for it from `kind`'s pool.
    pub(crate) async fn open(
        &self,
        kind: TriggerKind,
        address: &str,
        allowed: &AllowedHosts,
    ) -> Result<Connection, OpenError> {
        let config = tokio_postgres::Config::from_str(address)
            .map_err(|e| OpenError::BadAddress(e.to_string()))?;
        for target in targets(&config)? {
            if !allowed.allows(&target) {
                return Err(OpenError::NotAllowed(target.to_string()));
            }
        }
        let database = config.get_dbname().unwrap_or_default().to_string();
        let pool = self
            .pool_for(kind, address, config)
            .map_err(OpenError::Connect)?;
        let client = pool
            .get()
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        Ok(Connection::new(client, database))
    }
}

/// `host:port/dbname`: identifies a pool in metrics without its credentials.
fn pool_label(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// Every address:port the driver may dial for this address, as outbound
/// targets. tokio-postgres dials a host's `hostaddr` when one is given (the
/// host name is then only the name it authenticates), so that address is
/// what is checked: otherwise `host=<allowed> hostaddr=<anywhere>` would
/// reach any address on an allowed port.
fn targets(config: &tokio_postgres::Config) -> Result<Vec<OutboundTarget>, OpenError> {
    let (hosts, hostaddrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    let mut out = Vec::new();
    for i in 0..hosts.len().max(hostaddrs.len()) {
        let dialed = match (hostaddrs.get(i), hosts.get(i)) {
            (Some(address), _) => address.to_string(),
            (None, Some(Host::Tcp(name))) => name.clone(),
            #[cfg(unix)]
            (None, Some(Host::Unix(path))) => {
                return Err(OpenError::BadAddress(format!(
                    "Unix socket `{}` is not supported; use a host name",
                    path.display()
                )))
            }
            (None, None) => unreachable!("i is below the longer list's length"),
        };
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        out.push(OutboundTarget::new("postgres", &dialed, port));
    }
    if out.is_empty() {
        return Err(OpenError::BadAddress("the address names no host".into()));
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("invalid address: {0}")]
    BadAddress(String),
    #[error("address {0} is not permitted by the component's allowed_outbound_hosts")]
    NotAllowed(String),
    #[error("{0}")]
    Connect(String),
}

/// The `connection` resource: a pooled client held for the instance's life.
pub struct Connection {
    session: Arc<tokio::sync::Mutex<Session>>,
    /// The database's name (for spans).
    pub(crate) database: String,
}

/// What runs statements: the pooled client and what it knows of the
/// transaction it may be in. Behind an async lock shared with the
/// statements in flight, so that an async call runs without holding the
/// instance's state, two statements of one connection run one after the
/// other (as PostgreSQL runs them), and a call the guest cancels releases
/// the connection as it stands.
pub(crate) struct Session {
    client: Option<Object>,
    pub(crate) txn: TxnTracker,
}

impl Connection {
    fn new(client: Object, database: String) -> Self {
        let session = Session {
            client: Some(client),
            txn: TxnTracker::default(),
        };
        Self {
            session: Arc::new(tokio::sync::Mutex::new(session)),
            database,
        }
    }

    /// The session, for a statement to lock while it runs.
    pub(crate) fn session(&self) -> Arc<tokio::sync::Mutex<Session>> {
        self.session.clone()
    }
}

impl Session {
    pub(crate) fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a session has its client until it is dropped")
    }
}

/// The last holder of a session (the guest's handle, or a statement that
/// outlived it) returns the client to the pool, rolled back first if the
/// guest left a transaction open (it trapped, or forgot to commit).
impl Drop for Session {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.txn.maybe_in_transaction() {
            return; // back to the pool as it is
        }
        // Roll it back before the connection serves anyone else; if that is
        // not possible, detach it from the pool so it is closed.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialed(address: &str) -> Vec<String> {
        let config = tokio_postgres::Config::from_str(address).unwrap();
        targets(&config)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_addresses_checked_are_the_ones_dialed() {
        assert_eq!(
            dialed("postgres://u@db.internal:5433/shop"),
            ["postgres://db.internal:5433"]
        );
        assert_eq!(
            dialed("host=db.internal hostaddr=10.1.2.3 port=5433"),
            ["postgres://10.1.2.3:5433"]
        );
        assert_eq!(
            dialed("host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,2"),
            ["postgres://10.0.0.1:1", "postgres://10.0.0.2:2"]
        );
        assert_eq!(dialed("hostaddr=::1"), ["postgres://[::1]:5432"]);
    }
}
