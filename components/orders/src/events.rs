//! The order side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`): reservations and payments move orders along.
//!
//! Each event is applied once (the runner's processed-events record, in
//! the same transaction as the move). Events from different topics may
//! arrive in any order, so a move that no longer applies (the order moved
//! on) is skipped, not failed.

use mart_domain::events::{Event, EventData};
use mart_domain::orders::{CancelReason, Status};
use mart_domain::DomainError;
use mart_guest::kafka::{self, EventHandler, Failure, Message};

use crate::db::Db;

struct Events;

impl kafka::Handler for Events {
    fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        kafka::run(&mut Events, &messages)
    }
}

kafka::export_kafka_handler!(Events);

impl EventHandler for Events {
    type Db = Db;
    const COMPONENT: &'static str = "orders-events";
    const CONSUMER: &'static str = "orders";

    fn connect(&self) -> Result<Db, DomainError> {
        Db::connect()
    }

    fn on(&mut self, db: &Db, event: &Event) -> Result<(), DomainError> {
        let (order, next, reason) = match &event.data {
            EventData::InventoryReserved(data) => (&data.order_id, Status::Reserved, None),
            EventData::InventoryRejected(data) => {
                let reason = format!("{}: {}", CancelReason::OutOfStock.as_str(), data.reason);
                (&data.order_id, Status::Cancelled, Some(reason))
            }
            EventData::PaymentSucceeded(data) => (&data.order_id, Status::Paid, None),
            EventData::PaymentFailed(data) => {
                let declined = CancelReason::PaymentDeclined.as_str();
                let reason = match &data.reason {
                    Some(r) => format!("{declined}: {r}"),
                    None => declined.to_string(),
                };
                (&data.order_id, Status::Cancelled, Some(reason))
            }
            EventData::PaymentRefunded(data) => {
                (&data.order_id, Status::Refunded, data.reason.clone())
            }
            EventData::PaymentActionRequired(data) => {
                let url = data.redirect_url.as_deref().ok_or_else(|| {
                    DomainError::invalid("redirect_url", "payment.action_required without a URL")
                })?;
                return db.set_payment_redirect(&data.order_id, url);
            }
            _ => return Ok(()),
        };
        move_if_allowed(db, order, next, reason.as_deref())
    }
}

/// Applies the move if the order's current status allows it; a move that
/// no longer applies (the order was cancelled meanwhile, or is already
/// there) is skipped.
fn move_if_allowed(
    db: &Db,
    order: &str,
    next: Status,
    reason: Option<&str>,
) -> Result<(), DomainError> {
    match db.change_status(order, next, reason) {
        Ok(_) => Ok(()),
        Err(DomainError::Conflict(why)) => {
            eprintln!(
                "orders: skipped moving order {order} to {}: {why}",
                next.as_str()
            );
            Ok(())
        }
        Err(other) => Err(other),
    }
}
