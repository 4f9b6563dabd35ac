//! The order side of the checkout saga, as a Kafka handler (Mart's
//! `mart:kafka/handler`): reservations and payments move orders along.
//!
//! What each event means for the order is decided in
//! `mart_domain::orders::saga_step` (tested natively); this applies it, once
//! (the runner's processed-events record, in the same transaction as the
//! move). Events from different topics may
//! arrive in any order, so a move that no longer applies (the order moved
//! on) is skipped, not failed.

use mart_domain::events::Event;
use mart_domain::orders::{saga_step, PaymentPages, SagaStep, Status};
use mart_domain::DomainError;
use mart_guest::config::variable;
use mart_guest::kafka::EventHandler;

use crate::db::Db;

struct Events;

mart_guest::export_event_handler!(Events);

impl EventHandler for Events {
    type Db = Db;
    const COMPONENT: &'static str = "orders-events";
    const CONSUMER: &'static str = "orders";

    async fn connect(&self) -> Result<Db, DomainError> {
        Db::connect().await
    }

    async fn on(&mut self, db: &Db, event: &Event) -> Result<(), DomainError> {
        let pages = PaymentPages {
            payfast_base: variable("payfast_base").await?,
        };
        match saga_step(&event.data, &pages)? {
            Some(SagaStep::Move {
                order_id,
                status,
                reason,
            }) => move_if_allowed(db, &order_id, status, reason.as_deref()).await,
            Some(SagaStep::PaymentPage { order_id, url }) => {
                db.set_payment_redirect(&order_id, &url).await
            }
            None => Ok(()),
        }
    }
}

/// Applies the move if the order's current status allows it; a move that
/// no longer applies (the order was cancelled meanwhile, or is already
/// there) is skipped.
async fn move_if_allowed(
    db: &Db,
    order: &str,
    next: Status,
    reason: Option<&str>,
) -> Result<(), DomainError> {
    match db.change_status(order, next, reason).await {
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
