//! The inventory side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`) on `mart.orders`: a placed order reserves its lines
//! (all or none), a cancelled one releases them, a paid one commits them,
//! a refunded one returns them to stock.
//!
//! Each event is applied once: the runner's processed-events record and
//! the effect (with the resulting inventory event in the outbox) commit
//! together. All of one order's events share a partition, so they arrive
//! in order.

use mart_domain::events::{Event, EventData};
use mart_domain::inventory::{self, Line, ReservationStep};
use mart_domain::{parse_uuid, DomainError};
use mart_guest::kafka::EventHandler;

use crate::db::{Db, Outcome};

struct Events;

mart_guest::export_event_handler!(Events);

impl EventHandler for Events {
    type Db = Db;
    const COMPONENT: &'static str = "inventory-events";
    const CONSUMER: &'static str = "inventory";

    async fn connect(&self) -> Result<Db, DomainError> {
        Db::connect().await
    }

    async fn on(&mut self, db: &Db, event: &Event) -> Result<(), DomainError> {
        let outcome = match &event.data {
            EventData::OrderPlaced(placed) => {
                let order = order_id(&placed.order_id)?;
                let lines: Vec<Line> = placed
                    .lines
                    .iter()
                    .map(|l| Line {
                        product_id: l.product_id.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                let lines = inventory::normalise_lines(&lines, |id| parse_uuid(id).is_some())?;
                db.reserve(&order, &lines).await?
            }
            EventData::OrderCancelled(changed) => {
                take(db, &changed.order_id, ReservationStep::Release).await?
            }
            // A paid order always had a reservation: none is for an operator.
            EventData::OrderPaid(changed) => {
                db.take_step(&order_id(&changed.order_id)?, ReservationStep::Commit)
                    .await?
            }
            EventData::OrderRefunded(changed) => {
                take(db, &changed.order_id, ReservationStep::Return).await?
            }
            _ => return Ok(()),
        };
        if let Outcome::Rejected(reason) = outcome {
            // Out of stock is an answer (inventory.rejected went out); other
            // refusals mean the reservation already moved on.
            eprintln!("inventory: {}: {reason}", event.subject);
        }
        Ok(())
    }
}

/// Releases or returns the order's reservation. An order without one (it
/// was rejected for want of stock) has nothing to release or return.
async fn take(db: &Db, order: &str, step: ReservationStep) -> Result<Outcome, DomainError> {
    match db.take_step(&order_id(order)?, step).await {
        Err(DomainError::NotFound(why)) => Ok(Outcome::Rejected(why)),
        other => other,
    }
}

fn order_id(id: &str) -> Result<String, DomainError> {
    parse_uuid(id)
        .ok_or_else(|| DomainError::invalid("order_id", format!("{id} is not an order id")))
}
