//! The order side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`): reservations and payments move orders along.
//!
//! Each event is applied once (processed_events, in the same transaction as
//! the move). Events from different topics may arrive in any order, so a
//! move that no longer applies (the order moved on) is skipped, not failed.

use mart_domain::events::{EventType, InventoryChanged, InventoryRejected};
use mart_domain::orders::{CancelReason, Status};
use mart_domain::payments::PaymentChanged;
use mart_guest::kafka::{self, Failure, HandlerError, Message};

use crate::db::Db;

const CONSUMER: &str = "orders";

struct Events;

impl kafka::Handler for Events {
    fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        let db = Db::connect()?;
        kafka::each(&messages, |message| apply(&db, message))
    }
}

kafka::export_kafka_handler!(Events);

fn apply(db: &Db, message: &Message) -> Result<(), HandlerError> {
    let event = kafka::event(message)?;
    let Some(kind) = EventType::parse(&event.event_type) else {
        return Ok(()); // a newer event type this version does not know
    };
    let (order, next, reason): (String, Status, Option<String>) = match kind {
        EventType::InventoryReserved => {
            let data: InventoryChanged = event.data_as().map_err(HandlerError::permanent)?;
            (data.order_id, Status::Reserved, None)
        }
        EventType::InventoryRejected => {
            let data: InventoryRejected = event.data_as().map_err(HandlerError::permanent)?;
            let reason = format!("{}: {}", CancelReason::OutOfStock.as_str(), data.reason);
            (data.order_id, Status::Cancelled, Some(reason))
        }
        EventType::PaymentSucceeded => {
            let data: PaymentChanged = event.data_as().map_err(HandlerError::permanent)?;
            (data.order_id, Status::Paid, None)
        }
        EventType::PaymentFailed => {
            let data: PaymentChanged = event.data_as().map_err(HandlerError::permanent)?;
            let reason = match data.reason {
                Some(r) => format!("{}: {r}", CancelReason::PaymentDeclined.as_str()),
                None => CancelReason::PaymentDeclined.as_str().to_string(),
            };
            (data.order_id, Status::Cancelled, Some(reason))
        }
        EventType::PaymentRefunded => {
            let data: PaymentChanged = event.data_as().map_err(HandlerError::permanent)?;
            (data.order_id, Status::Refunded, data.reason)
        }
        EventType::PaymentActionRequired => {
            let data: PaymentChanged = event.data_as().map_err(HandlerError::permanent)?;
            let url = data
                .redirect_url
                .ok_or_else(|| HandlerError::permanent("payment.action_required without a URL"))?;
            kafka::apply_once(&db.connection, CONSUMER, &event.id, || {
                db.set_payment_redirect(&data.order_id, &url)
                    .map_err(HandlerError::from)
            })?;
            return Ok(());
        }
        _ => return Ok(()),
    };
    kafka::apply_once(&db.connection, CONSUMER, &event.id, || {
        move_if_allowed(db, &order, next, reason.as_deref())
    })?;
    Ok(())
}

/// Applies the move if the order's current status allows it; a move that
/// no longer applies (the order was cancelled meanwhile, or is already
/// there) is skipped. Runs inside the caller's transaction.
fn move_if_allowed(
    db: &Db,
    order: &str,
    next: Status,
    reason: Option<&str>,
) -> Result<(), HandlerError> {
    match db.change_status_in_transaction(order, next, reason) {
        Ok(_) => Ok(()),
        Err(problem) if problem.status == 409 => {
            eprintln!(
                "orders: skipped moving order {order} to {}: {}",
                next.as_str(),
                problem.detail
            );
            Ok(())
        }
        Err(problem) => Err(problem.into()),
    }
}
