//! The inventory side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`) on `mart.orders`: a placed order reserves its lines
//! (all or none), a cancelled one releases them, a paid one commits them,
//! a refunded one returns them to stock.
//!
//! Each event is applied once: its processed-events record and its effect
//! (with the resulting inventory event in the outbox) commit together.
//! All of one order's events share a partition, so they arrive in order.

use mart_domain::events::EventType;
use mart_domain::inventory::{self, Line};
use mart_domain::orders::OrderPlaced;
use mart_domain::parse_uuid;
use mart_guest::kafka::{self, Failure, HandlerError, Message};
use serde::Deserialize;

use crate::db::{Db, Outcome};

const CONSUMER: &str = "inventory";

struct Events;

impl kafka::Handler for Events {
    fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        let db = Db::connect()?;
        kafka::each(&messages, |message| apply(&db, message))
    }
}

kafka::export_kafka_handler!(Events);

#[derive(Deserialize)]
struct OrderRef {
    order_id: String,
}

fn apply(db: &Db, message: &Message) -> Result<(), HandlerError> {
    let event = kafka::event(message)?;
    let kind = EventType::parse(&event.event_type);
    if !matches!(
        kind,
        Some(
            EventType::OrderPlaced
                | EventType::OrderCancelled
                | EventType::OrderPaid
                | EventType::OrderRefunded
        )
    ) {
        return Ok(());
    }
    let order = event
        .data_as::<OrderRef>()
        .ok()
        .and_then(|o| parse_uuid(&o.order_id))
        .ok_or_else(|| {
            HandlerError::permanent(format!("event {} has no valid order_id", event.id))
        })?;
    db.transaction(|db| -> Result<(), HandlerError> {
        if !kafka::first_time(&db.connection, CONSUMER, &event.id)? {
            return Ok(());
        }
        let outcome = match kind {
            Some(EventType::OrderPlaced) => {
                let placed: OrderPlaced = event.data_as().map_err(HandlerError::permanent)?;
                let lines: Vec<Line> = placed
                    .lines
                    .iter()
                    .map(|l| Line {
                        product_id: l.product_id.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                let lines = inventory::normalise_lines(&lines, |id| parse_uuid(id).is_some())?;
                db.reserve(&order, &lines)?
            }
            Some(EventType::OrderCancelled) => match db.finish_reservation(&order, false) {
                // Rejected orders never had a reservation.
                Err(problem) if problem.status == 404 => return Ok(()),
                other => other?,
            },
            Some(EventType::OrderPaid) => db.finish_reservation(&order, true)?,
            Some(EventType::OrderRefunded) => db.return_stock(&order)?,
            _ => return Ok(()),
        };
        if let Outcome::Rejected(reason) = outcome {
            // Out of stock is an answer (inventory.rejected went out); other
            // refusals mean the reservation already moved on.
            eprintln!("inventory: order {order}: {reason}");
        }
        Ok(())
    })
}
