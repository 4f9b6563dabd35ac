//! Host bindings for Mart's own `mart:kafka` WIT package (wit/mart/kafka.wit).

mod handler_world {
    wasmtime::component::bindgen!({
        path: "../../wit/mart",
        world: "mart:kafka/kafka-handler",
        imports: { default: async },
        exports: { default: async },
    });
}

mod host_world {
    wasmtime::component::bindgen!({
        path: "../../wit/mart",
        world: "mart:kafka/kafka-host",
        imports: { default: async },
    });
}

pub use handler_world::exports::mart::kafka::handler::Header as MessageHeader;
pub use handler_world::exports::mart::kafka::handler::{Failure, Message};
pub use handler_world::{KafkaHandler, KafkaHandlerPre};
pub use host_world::mart;
