//! Closes a cart once an order was placed from it (Mart's
//! `mart:kafka/handler` on `mart.orders`). Applied once, like every event.

use mart_domain::events::{Event, EventData};
use mart_domain::DomainError;
use mart_guest::kafka::EventHandler;

use crate::db::Db;

struct Events;

mart_guest::export_event_handler!(Events);

impl EventHandler for Events {
    type Db = Db;
    const COMPONENT: &'static str = "carts-events";
    const CONSUMER: &'static str = "carts";

    async fn connect(&self) -> Result<Db, DomainError> {
        Db::connect().await
    }

    async fn on(&mut self, db: &Db, event: &Event) -> Result<(), DomainError> {
        let EventData::OrderPlaced(placed) = &event.data else {
            return Ok(());
        };
        match placed.cart_id.as_deref().and_then(mart_domain::parse_uuid) {
            Some(cart) => db.check_out(&cart).await,
            None => Ok(()), // no cart of ours
        }
    }
}
