//! Spin's outbound Redis, `fermyon:spin/redis@2.0.0`: a component opens a
//! connection to a `redis://` (or `rediss://`) address its
//! `allowed_outbound_hosts` lists and runs commands on it. An address not
//! listed is `invalid-address`, Spin's answer, and nothing is dialled.
//!
//! Every connection has a connect and a response timeout; a connection
//! lives as long as the instance that opened it.

use std::sync::Arc;
use std::time::Duration;

use mart_outbound_networking::{AllowedHosts, OutboundTarget};
use mart_runtime::{HostPart, InstanceContext, InstanceState};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands as _;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/redis@2.0.0"],
        inline: "
            package mart:host-redis;
            world redis-host {
                import fermyon:spin/redis@2.0.0;
            }
        ",
        world: "mart:host-redis/redis-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/redis.connection": crate::Connection,
        },
    });
}

use bindings::fermyon::spin::redis::{self as v2, Error, RedisParameter, RedisResult};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one instance may hold open at once.
const MAX_CONNECTIONS: usize = 64;

/// One open connection (multiplexed: clones share it).
#[derive(Clone)]
pub struct Connection(MultiplexedConnection);

/// Connects to the Redis server at `url`, with the host's timeouts.
pub async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A connection to `url` for a long-lived user (a Redis-backed key-value
/// store shared by every instance): it reconnects by itself after the
/// server went away, with the same timeouts.
pub async fn connect_managed(url: &str) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    redis::aio::ConnectionManager::new_with_config(redis::Client::open(url)?, config).await
}

/// One instance's Redis state.
pub struct RedisHost {
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    open: usize,
}

impl RedisHost {
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self {
            allowed,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    fn is_allowed(&self, address: &str) -> bool {
        OutboundTarget::from_url(address).is_ok_and(|target| self.allowed.allows(&target))
    }

    fn connection(&self, handle: &Resource<Connection>) -> wasmtime::Result<MultiplexedConnection> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

/// A call's answer: the guest sees the interface's error, never a trap.
type Answer<T> = wasmtime::Result<Result<T, Error>>;

/// The interface's error for a failed command: a value of the wrong type
/// (a reply that does not convert, `WRONGTYPE`, `INCR` of a non-integer)
/// is `type-error`, anything else `other` with Redis's message.
fn other(error: redis::RedisError) -> Error {
    let wrong_type = error.kind() == redis::ErrorKind::UnexpectedReturnType
        || error.code() == Some("WRONGTYPE")
        || error.detail().is_some_and(|d| d.contains("not an integer"));
    if wrong_type {
        Error::TypeError
    } else {
        Error::Other(error.to_string())
    }
}

impl v2::Host for RedisHost {}

impl v2::HostConnection for RedisHost {
    async fn open(&mut self, address: String) -> Answer<Resource<Connection>> {
        if !self.is_allowed(&address) {
            tracing::warn!(%address, "redis address not in allowed_outbound_hosts");
            return Ok(Err(Error::InvalidAddress));
        }
        if self.open >= MAX_CONNECTIONS {
            return Ok(Err(Error::TooManyConnections));
        }
        let connection = match connect(&address).await {
            Ok(c) => c,
            Err(e) if e.kind() == redis::ErrorKind::InvalidClientConfig => {
                return Ok(Err(Error::InvalidAddress))
            }
            Err(e) => return Ok(Err(other(e))),
        };
        self.open += 1;
        Ok(Ok(self.table.push(Connection(connection))?))
    }

    async fn publish(
        &mut self,
        connection: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Answer<()> {
        let mut c = self.connection(&connection)?;
        Ok(c.publish::<_, _, ()>(channel, payload).await.map_err(other))
    }

    async fn get(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer<Option<Vec<u8>>> {
        let mut c = self.connection(&connection)?;
        Ok(c.get(key).await.map_err(other))
    }

    async fn set(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<()> {
        let mut c = self.connection(&connection)?;
        Ok(c.set::<_, _, ()>(key, value).await.map_err(other))
    }

    async fn incr(&mut self, connection: Resource<Connection>, key: String) -> Answer<i64> {
        let mut c = self.connection(&connection)?;
        Ok(c.incr(key, 1).await.map_err(other))
    }

    async fn del(&mut self, connection: Resource<Connection>, keys: Vec<String>) -> Answer<u32> {
        let mut c = self.connection(&connection)?;
        Ok(c.del(keys).await.map_err(other))
    }

    async fn sadd(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer<u32> {
        let mut c = self.connection(&connection)?;
        Ok(c.sadd(key, values).await.map_err(other))
    }

    async fn smembers(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer<Vec<String>> {
        let mut c = self.connection(&connection)?;
        Ok(c.smembers(key).await.map_err(other))
    }

    async fn srem(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer<u32> {
        let mut c = self.connection(&connection)?;
        Ok(c.srem(key, values).await.map_err(other))
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Answer<Vec<RedisResult>> {
        let mut c = self.connection(&connection)?;
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: redis::Value = match cmd.query_async(&mut c).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(other(e))),
        };
        let mut results = Vec::new();
        Ok(flatten(value, &mut results).map(|()| results))
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open -= 1;
        Ok(())
    }
}

/// A reply as the interface's flat list, as Spin gives it: arrays and
/// sets are flattened, `OK` is a status, doubles and big numbers their
/// text; maps and pushes have no WIT form and are a type error.
fn flatten(value: redis::Value, into: &mut Vec<RedisResult>) -> Result<(), Error> {
    use redis::Value;
    match value {
        Value::Nil => into.push(RedisResult::Nil),
        Value::Int(i) => into.push(RedisResult::Int64(i)),
        Value::BulkString(b) => into.push(RedisResult::Binary(b)),
        Value::SimpleString(s) => into.push(RedisResult::Status(s)),
        Value::Okay => into.push(RedisResult::Status("OK".into())),
        Value::Boolean(b) => into.push(RedisResult::Int64(b.into())),
        Value::Double(d) => into.push(RedisResult::Binary(d.to_string().into_bytes())),
        Value::BigNumber(digits) => into.push(RedisResult::Binary(digits)),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, into)?;
            }
        }
        Value::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
        _ => return Err(Error::TypeError),
    }
    Ok(())
}

struct Redis;

impl HasData for Redis {
    type Data<'a> = &'a mut RedisHost;
}

/// `fermyon:spin/redis@2.0.0` as a host part of the runtime.
pub struct RedisPart;

impl HostPart for RedisPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        v2::add_to_linker::<_, Redis>(linker, InstanceState::part::<RedisHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        Box::new(RedisHost::new(of.component.allowed_hosts.clone()))
    }
}
