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

use mart_domain::events::{self, Event, EventData};
use mart_domain::DomainError;
use mart_guest::kafka::{EventHandler, Handling};

use crate::db::Db;

struct Events;

mart_guest::export_event_handler!(Events);

impl EventHandler for Events {
    type Db = Db;
    const COMPONENT: &'static str = "payments-events";
    const CONSUMER: &'static str = "payments";

    async fn connect(&self) -> Result<Db, DomainError> {
        Db::connect().await
    }

    fn handling(&self, event: &Event) -> Handling {
        match event.data {
            // The provider is asked outside any transaction, then the
            // outcome recorded; the refund's own record makes a
            // redelivered event find it done.
            EventData::PaymentRefundDue(_) => Handling::OnItsOwn,
            _ if events::takes(Self::COMPONENT, event.event_type()) => Handling::Once,
            _ => Handling::Skip,
        }
    }

    async fn on(&mut self, db: &Db, event: &Event) -> Result<(), DomainError> {
        match &event.data {
            EventData::OrderPlaced(placed) => db.order_placed(placed).await,
            EventData::InventoryReserved(reserved) => db.stock_reserved(&reserved.order_id).await,
            EventData::OrderCancelled(changed) => db.order_cancelled(&changed.order_id).await,
            EventData::OrderRefunded(changed) => {
                let reason = changed.reason.as_deref().unwrap_or("order refunded");
                match db.refund_order(&changed.order_id, reason).await {
                    Err(DomainError::Conflict(why)) => {
                        eprintln!("payments: order {}: {why}", changed.order_id);
                        Ok(())
                    }
                    other => other.map(|_| ()),
                }
            }
            EventData::PaymentSucceeded(changed) => db.refund_if_cancelled(&changed.order_id).await,
            EventData::PaymentRefundDue(due) => db.carry_out(due).await,
            _ => Ok(()),
        }
    }
}
