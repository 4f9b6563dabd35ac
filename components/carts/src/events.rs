//! Closes a cart once an order was placed from it (Mart's
//! `mart:kafka/handler` on `mart.orders`). Closing is idempotent by itself
//! (`open` → `checked_out` once), so a redelivered event changes nothing.

use mart_domain::events::EventType;
use mart_domain::orders::OrderPlaced;
use mart_guest::db::{self as pg, uuid};
use mart_guest::kafka::{self, Failure, HandlerError, Message};

struct Events;

impl kafka::Handler for Events {
    fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        kafka::each(&messages, apply)
    }
}

kafka::export_kafka_handler!(Events);

fn apply(message: &Message) -> Result<(), HandlerError> {
    let event = kafka::event(message)?;
    if event.event_type != EventType::OrderPlaced.as_str() {
        return Ok(());
    }
    let placed: OrderPlaced = event.data_as().map_err(HandlerError::permanent)?;
    let Some(cart) = placed.cart_id.as_deref().and_then(mart_domain::parse_uuid) else {
        return Ok(());
    };
    let db = pg::connect("carts")?;
    db.execute(
        "UPDATE carts SET status = 'checked_out', updated_at = now() WHERE id = $1 AND status = 'open'",
        &[uuid(&cart)],
    )
    .map_err(HandlerError::retry)?;
    Ok(())
}
