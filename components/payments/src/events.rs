//! The payment side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`) on `mart.orders` and `mart.inventory`, and on its
//! own `mart.payments` for refunds that must not hold up a provider's
//! webhook (a late success for a cancelled order, a second payment).
//!
//! `order.placed` and `inventory.reserved` come from different topics and
//! may arrive in either order; the charge happens when both are in. A
//! cancelled order is not charged, and a charge that went through before
//! the cancellation is refunded: decided with the event that calls for it
//! (`payment.refund_due`), and carried out by this handler of that event,
//! outside any transaction. Each event is applied once.

use mart_domain::events::{EventType, InventoryChanged};
use mart_domain::orders::{OrderChanged, OrderPlaced};
use mart_domain::payments::{PaymentChanged, RefundDue};
use mart_guest::kafka::{self, Failure, HandlerError, Message};

use crate::db::Db;

const CONSUMER: &str = "payments";

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
        return Ok(());
    };
    if !matches!(
        kind,
        EventType::OrderPlaced
            | EventType::InventoryReserved
            | EventType::OrderCancelled
            | EventType::OrderRefunded
            | EventType::PaymentSucceeded
            | EventType::PaymentRefundDue
    ) {
        return Ok(());
    }
    // A refund is carried out outside any transaction (the provider is
    // asked, then the outcome recorded); the refund's own record makes a
    // redelivered event find it done.
    if kind == EventType::PaymentRefundDue {
        let due: RefundDue = event.data_as().map_err(HandlerError::permanent)?;
        return Ok(db.carry_out(&due)?);
    }
    db.transaction(|db| -> Result<(), HandlerError> {
        if !kafka::first_time(&db.connection, CONSUMER, &event.id)? {
            return Ok(());
        }
        match kind {
            EventType::OrderPlaced => {
                let placed: OrderPlaced = event.data_as().map_err(HandlerError::permanent)?;
                db.order_placed(&placed)?;
            }
            EventType::InventoryReserved => {
                let reserved: InventoryChanged =
                    event.data_as().map_err(HandlerError::permanent)?;
                db.stock_reserved(&reserved.order_id)?;
            }
            EventType::OrderCancelled => {
                let changed: OrderChanged = event.data_as().map_err(HandlerError::permanent)?;
                db.order_cancelled(&changed.order_id)?;
            }
            EventType::OrderRefunded => {
                let changed: OrderChanged = event.data_as().map_err(HandlerError::permanent)?;
                let reason = changed.reason.unwrap_or_else(|| "order refunded".into());
                match db.refund_order(&changed.order_id, &reason) {
                    Err(problem) if problem.status == 409 => {
                        eprintln!("payments: order {}: {}", changed.order_id, problem.detail)
                    }
                    other => {
                        other?;
                    }
                }
            }
            EventType::PaymentSucceeded => {
                let changed: PaymentChanged = event.data_as().map_err(HandlerError::permanent)?;
                db.refund_if_cancelled(&changed.order_id)?;
            }
            _ => {}
        }
        Ok(())
    })
}
