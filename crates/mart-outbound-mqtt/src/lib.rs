//! Spin's outbound MQTT, `fermyon:spin/mqtt@2.0.0` and (async, Spin 4's)
//! `spin:mqtt/mqtt@3.0.0`: a component opens a
//! connection to an `mqtt://host:port?client_id=<id>` address its
//! `allowed_outbound_hosts` lists and publishes on it. An address not
//! listed is `connection-failed` ("address … is not permitted"), Spin's
//! answer, and nothing is dialled.
//!
//! As in Spin (`crates/factor-outbound-mqtt`), `open` only prepares the
//! client; `publish` connects if needed and returns once the broker has the
//! message at the requested QoS (sent for at-most-once, PUBACK for
//! at-least-once, PUBCOMP for exactly-once), or fails within a timeout.

use std::sync::Arc;
use std::time::Duration;

use mart_outbound_networking::{AllowedHosts, OutboundTarget};
use mart_runtime::{HostPart, InstanceContext, InstanceState};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/mqtt@2.0.0", "../../wit/spin/mqtt@3.0.0"],
        inline: "
            package mart:host-mqtt;
            world mqtt-host {
                import fermyon:spin/mqtt@2.0.0;
                import spin:mqtt/mqtt@3.0.0;
            }
        ",
        world: "mart:host-mqtt/mqtt-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/mqtt.connection": crate::Connection,
            "spin:mqtt/mqtt.connection": crate::Connection,
        },
    });
}

use bindings::fermyon::spin::mqtt::{self as v2, Error, Qos};
use bindings::spin::mqtt::mqtt as v3;

/// How long one publish may take, connecting included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages a connection queues before `publish` waits.
const QUEUE: usize = 16;
/// Connections one instance may hold open at once.
const MAX_CONNECTIONS: usize = 64;

/// One open connection; clones share it.
#[derive(Clone)]
pub struct Connection {
    client: AsyncClient,
    events: Arc<tokio::sync::Mutex<EventLoop>>,
}

impl Connection {
    fn new(
        address: &str,
        username: String,
        password: String,
        keep_alive: Duration,
    ) -> Result<Self, Error> {
        let mut options = MqttOptions::parse_url(address).map_err(|e| {
            tracing::warn!(%address, error = %e, "mqtt address refused");
            Error::InvalidAddress
        })?;
        if !username.is_empty() || !password.is_empty() {
            options.set_credentials(username, password);
        }
        // MQTT counts keep-alive in whole seconds up to u16::MAX, 0 meaning
        // none; rumqttc panics under a second, so shorter asks keep its
        // default (60 s) rather than take the host down.
        let keep_alive = keep_alive.min(Duration::from_secs(u16::MAX.into()));
        if keep_alive.is_zero() || keep_alive >= Duration::from_secs(1) {
            options.set_keep_alive(keep_alive);
        }
        let (client, events) = AsyncClient::new(options, QUEUE);
        Ok(Self {
            client,
            events: Arc::new(tokio::sync::Mutex::new(events)),
        })
    }

    async fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> Result<(), Error> {
        let delivered = async {
            self.client
                .publish(topic, qos, false, payload)
                .await
                .map_err(|e| Error::Other(e.to_string()))?;
            // Drive the connection until the broker has the message.
            let mut events = self.events.lock().await;
            loop {
                let event = events
                    .poll()
                    .await
                    .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
                let done = matches!(
                    (qos, event),
                    (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                        | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                        | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_)))
                );
                if done {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, delivered)
            .await
            .unwrap_or_else(|_| {
                Err(Error::ConnectionFailed(format!(
                    "the broker did not take the message within {PUBLISH_TIMEOUT:?}"
                )))
            })
    }
}

/// One instance's MQTT state.
pub struct MqttHost {
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    open: usize,
}

impl MqttHost {
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self {
            allowed,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    /// Prepares a connection to `address` if the component may open it:
    /// an address not listed is `connection-failed`, as on Spin.
    fn open(
        &mut self,
        address: &str,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        let allowed = OutboundTarget::from_url(address).is_ok_and(|t| self.allowed.allows(&t));
        if !allowed {
            tracing::warn!(%address, "mqtt address not in allowed_outbound_hosts");
            return Ok(Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            ))));
        }
        if self.open >= MAX_CONNECTIONS {
            return Ok(Err(Error::TooManyConnections));
        }
        let keep_alive = Duration::from_secs(keep_alive_interval_in_secs);
        let connection = match Connection::new(address, username, password, keep_alive) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        self.open += 1;
        Ok(Ok(self.table.push(connection)?))
    }

    /// The connection behind `handle` (a clone, so no borrow of the
    /// instance's state is held while it publishes).
    fn connection(&self, handle: &Resource<Connection>) -> wasmtime::Result<Connection> {
        Ok(self.table.get(handle)?.clone())
    }

    fn close(&mut self, handle: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the event loop closes the socket.
        self.table.delete(handle)?;
        self.open -= 1;
        Ok(())
    }
}

fn qos(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// A call's answer: the guest sees the interface's error, never a trap.
type Answer<T> = wasmtime::Result<Result<T, Error>>;

impl v2::Host for MqttHost {}

impl v2::HostConnection for MqttHost {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Answer<Resource<Connection>> {
        MqttHost::open(
            self,
            &address,
            username,
            password,
            keep_alive_interval_in_secs,
        )
    }

    async fn publish(
        &mut self,
        connection: Resource<Connection>,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
    ) -> Answer<()> {
        let connection = self.connection(&connection)?;
        Ok(connection.publish(topic, payload, self::qos(qos)).await)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

// spin:mqtt/mqtt@3.0.0: the same calls as async functions, which reach the
// instance's state only between awaits (`Accessor::with`). Its types are
// 2.0.0's under another name.

impl From<Error> for v3::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidAddress => v3::Error::InvalidAddress,
            Error::TooManyConnections => v3::Error::TooManyConnections,
            Error::ConnectionFailed(message) => v3::Error::ConnectionFailed(message),
            Error::Other(message) => v3::Error::Other(message),
        }
    }
}

impl From<v3::Qos> for Qos {
    fn from(qos: v3::Qos) -> Self {
        match qos {
            v3::Qos::AtMostOnce => Qos::AtMostOnce,
            v3::Qos::AtLeastOnce => Qos::AtLeastOnce,
            v3::Qos::ExactlyOnce => Qos::ExactlyOnce,
        }
    }
}

impl v3::Host for MqttHost {}

impl v3::HostConnection for MqttHost {
    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for Mqtt {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        let opened = accessor.with(|mut access| {
            access
                .get()
                .open(&address, username, password, keep_alive_interval_in_secs)
        })?;
        Ok(opened.map_err(Into::into))
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let connection = accessor.with(|mut access| access.get().connection(&connection))?;
        let published = connection
            .publish(topic, payload, self::qos(qos.into()))
            .await;
        Ok(published.map_err(Into::into))
    }
}

struct Mqtt;

impl HasData for Mqtt {
    type Data<'a> = &'a mut MqttHost;
}

/// `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0` as a host part of
/// the runtime, on one table of connections per instance.
pub struct MqttPart;

impl HostPart for MqttPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        v2::add_to_linker::<_, Mqtt>(linker, InstanceState::part::<MqttHost>)?;
        v3::add_to_linker::<_, Mqtt>(linker, InstanceState::part::<MqttHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        Box::new(MqttHost::new(of.component.allowed_hosts.clone()))
    }
}
