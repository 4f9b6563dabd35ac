//! Spin's outbound Redis, `fermyon:spin/redis@2.0.0` and (async, Spin 4's)
//! `spin:redis/redis@3.0.0`: a component opens a
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
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/redis@2.0.0", "../../wit/spin/redis@3.0.0"],
        inline: "
            package mart:host-redis;
            world redis-host {
                import fermyon:spin/redis@2.0.0;
                import spin:redis/redis@3.0.0;
            }
        ",
        world: "mart:host-redis/redis-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/redis.connection": crate::Connection,
            "spin:redis/redis.connection": crate::Connection,
        },
    });
}

use bindings::fermyon::spin::redis::{self as v2, Error, RedisParameter, RedisResult};
use bindings::spin::redis::redis as v3;

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

impl RedisHost {
    /// Whether the component may open `address` now, as Spin answers: an
    /// address not listed is `invalid-address`, and nothing is dialled.
    /// A permitted open takes one of the instance's connections at once,
    /// before it dials: async opens in flight together count, so a p3
    /// guest cannot dial past the limit (`unreserve` gives it back).
    fn permit(&mut self, address: &str) -> Result<(), Error> {
        if !self.is_allowed(address) {
            tracing::warn!(%address, "redis address not in allowed_outbound_hosts");
            return Err(Error::InvalidAddress);
        }
        if self.open >= MAX_CONNECTIONS {
            return Err(Error::TooManyConnections);
        }
        self.open += 1;
        Ok(())
    }

    /// Gives back a connection `permit` took, whose dial failed.
    fn unreserve(&mut self) {
        self.open -= 1;
    }

    /// Keeps a connection dialled under a `permit`.
    fn hold(
        &mut self,
        connection: MultiplexedConnection,
    ) -> wasmtime::Result<Resource<Connection>> {
        self.table.push(Connection(connection)).map_err(|e| {
            self.unreserve();
            e.into()
        })
    }

    /// A permitted open's outcome: the connection kept, or the permit given back.
    fn opened(
        &mut self,
        dialled: Result<MultiplexedConnection, Error>,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        match dialled {
            Ok(connection) => Ok(Ok(self.hold(connection)?)),
            Err(e) => {
                self.unreserve();
                Ok(Err(e))
            }
        }
    }

    fn close(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open -= 1;
        Ok(())
    }
}

/// The commands, shared by both versions (which call them on a clone of
/// the instance's connection, so no borrow of its state is held while a
/// command runs).
mod commands {
    use super::*;

    pub async fn dial(address: &str) -> Result<MultiplexedConnection, Error> {
        match connect(address).await {
            Ok(c) => Ok(c),
            Err(e) if e.kind() == redis::ErrorKind::InvalidClientConfig => {
                Err(Error::InvalidAddress)
            }
            Err(e) => Err(other(e)),
        }
    }

    pub async fn publish(
        mut c: MultiplexedConnection,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        c.publish::<_, _, ()>(channel, payload).await.map_err(other)
    }

    pub async fn get(mut c: MultiplexedConnection, key: String) -> Result<Option<Vec<u8>>, Error> {
        c.get(key).await.map_err(other)
    }

    pub async fn set(
        mut c: MultiplexedConnection,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        c.set::<_, _, ()>(key, value).await.map_err(other)
    }

    pub async fn incr(mut c: MultiplexedConnection, key: String) -> Result<i64, Error> {
        c.incr(key, 1).await.map_err(other)
    }

    pub async fn del(mut c: MultiplexedConnection, keys: Vec<String>) -> Result<u32, Error> {
        c.del(keys).await.map_err(other)
    }

    pub async fn sadd(
        mut c: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        c.sadd(key, values).await.map_err(other)
    }

    pub async fn smembers(mut c: MultiplexedConnection, key: String) -> Result<Vec<String>, Error> {
        c.smembers(key).await.map_err(other)
    }

    pub async fn srem(
        mut c: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        c.srem(key, values).await.map_err(other)
    }

    pub async fn execute(
        mut c: MultiplexedConnection,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: redis::Value = cmd.query_async(&mut c).await.map_err(other)?;
        let mut results = Vec::new();
        flatten(value, &mut results).map(|()| results)
    }
}

impl v2::Host for RedisHost {}

impl v2::HostConnection for RedisHost {
    async fn open(&mut self, address: String) -> Answer<Resource<Connection>> {
        if let Err(refused) = self.permit(&address) {
            return Ok(Err(refused));
        }
        let dialled = commands::dial(&address).await;
        self.opened(dialled)
    }

    async fn publish(
        &mut self,
        connection: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Answer<()> {
        let c = self.connection(&connection)?;
        Ok(commands::publish(c, channel, payload).await)
    }

    async fn get(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer<Option<Vec<u8>>> {
        let c = self.connection(&connection)?;
        Ok(commands::get(c, key).await)
    }

    async fn set(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<()> {
        let c = self.connection(&connection)?;
        Ok(commands::set(c, key, value).await)
    }

    async fn incr(&mut self, connection: Resource<Connection>, key: String) -> Answer<i64> {
        let c = self.connection(&connection)?;
        Ok(commands::incr(c, key).await)
    }

    async fn del(&mut self, connection: Resource<Connection>, keys: Vec<String>) -> Answer<u32> {
        let c = self.connection(&connection)?;
        Ok(commands::del(c, keys).await)
    }

    async fn sadd(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer<u32> {
        let c = self.connection(&connection)?;
        Ok(commands::sadd(c, key, values).await)
    }

    async fn smembers(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer<Vec<String>> {
        let c = self.connection(&connection)?;
        Ok(commands::smembers(c, key).await)
    }

    async fn srem(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer<u32> {
        let c = self.connection(&connection)?;
        Ok(commands::srem(c, key, values).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Answer<Vec<RedisResult>> {
        let c = self.connection(&connection)?;
        Ok(commands::execute(c, command, arguments).await)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

// spin:redis/redis@3.0.0: the same commands as async functions, which
// reach the instance's state only between awaits (`Accessor::with`). Its
// types are 2.0.0's under another name.

impl From<Error> for v3::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidAddress => v3::Error::InvalidAddress,
            Error::TooManyConnections => v3::Error::TooManyConnections,
            Error::TypeError => v3::Error::TypeError,
            Error::Other(message) => v3::Error::Other(message),
        }
    }
}

impl From<RedisResult> for v3::RedisResult {
    fn from(result: RedisResult) -> Self {
        match result {
            RedisResult::Nil => v3::RedisResult::Nil,
            RedisResult::Status(s) => v3::RedisResult::Status(s),
            RedisResult::Int64(i) => v3::RedisResult::Int64(i),
            RedisResult::Binary(b) => v3::RedisResult::Binary(b),
        }
    }
}

impl From<v3::RedisParameter> for RedisParameter {
    fn from(parameter: v3::RedisParameter) -> Self {
        match parameter {
            v3::RedisParameter::Int64(i) => RedisParameter::Int64(i),
            v3::RedisParameter::Binary(b) => RedisParameter::Binary(b),
        }
    }
}

type Answer3<T> = wasmtime::Result<Result<T, v3::Error>>;

fn v3_answer<T>(result: Result<T, Error>) -> Answer3<T> {
    Ok(result.map_err(Into::into))
}

/// The connection behind `handle`, cloned out of the instance's state.
fn connection_of<T>(
    accessor: &Accessor<T, Redis>,
    handle: &Resource<Connection>,
) -> wasmtime::Result<MultiplexedConnection> {
    accessor.with(|mut access| access.get().connection(handle))
}

impl v3::Host for RedisHost {}

impl v3::HostConnection for RedisHost {
    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for Redis {
    async fn open(accessor: &Accessor<T, Self>, address: String) -> Answer3<Resource<Connection>> {
        if let Err(refused) = accessor.with(|mut access| access.get().permit(&address)) {
            return v3_answer(Err(refused));
        }
        let dialled = commands::dial(&address).await;
        v3_answer(accessor.with(|mut access| access.get().opened(dialled))?)
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Answer3<()> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::publish(c, channel, payload).await)
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer3<Option<Vec<u8>>> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::get(c, key).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
        value: Vec<u8>,
    ) -> Answer3<()> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::set(c, key, value).await)
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer3<i64> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::incr(c, key).await)
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        keys: Vec<String>,
    ) -> Answer3<u32> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::del(c, keys).await)
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer3<u32> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::sadd(c, key, values).await)
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
    ) -> Answer3<Vec<String>> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::smembers(c, key).await)
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Answer3<u32> {
        let c = connection_of(accessor, &connection)?;
        v3_answer(commands::srem(c, key, values).await)
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> Answer3<Vec<v3::RedisResult>> {
        let c = connection_of(accessor, &connection)?;
        let arguments = arguments.into_iter().map(Into::into).collect();
        let results = commands::execute(c, command, arguments).await;
        v3_answer(results.map(|r| r.into_iter().map(Into::into).collect()))
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

/// `fermyon:spin/redis@2.0.0` and `spin:redis/redis@3.0.0` as a host part
/// of the runtime, on one table of connections per instance.
pub struct RedisPart;

impl HostPart for RedisPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        v2::add_to_linker::<_, Redis>(linker, InstanceState::part::<RedisHost>)?;
        v3::add_to_linker::<_, Redis>(linker, InstanceState::part::<RedisHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        Box::new(RedisHost::new(of.component.allowed_hosts.clone()))
    }
}
