//! The payments database. A payment row changes status in one transaction
//! with its event, and only along pending → succeeded | failed | cancelled,
//! succeeded → refunded.

use mart_domain::events::EventType;
use mart_domain::orders::OrderPlaced;
use mart_domain::payments::{Charge, ChargeOutcome, PaymentChanged, PaymentStatus, RefundDue};
use mart_domain::Problem;
use mart_guest::db::Connection;
use mart_guest::db::{self as pg, decode, text, timestamp, uuid, uuid_text};
use serde::Serialize;
use spin_sdk::pg4::{DbValue, ParameterValue};

fn failed(e: impl std::fmt::Display) -> Problem {
    pg::failed("payments", e)
}

#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub user_id: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub provider: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub provider_ref: Option<String>,
    /// Where the buyer pays, while a redirect provider's payment is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    token: Option<String>,
    #[serde(skip)]
    stock_reserved: bool,
    #[serde(skip)]
    order_cancelled: bool,
}

impl Payment {
    fn status(&self) -> PaymentStatus {
        PaymentStatus::parse(&self.status).unwrap_or(PaymentStatus::Pending)
    }
}

// Timestamps as UTC `timestamp`: Spin 4.0.x cannot return `timestamptz` (see mart_domain::sql).
const COLUMNS: &str = "id, order_id, user_id, amount_minor, currency, provider, status, reason, \
                       provider_ref, (created_at AT TIME ZONE 'UTC') AS created_at, \
                       (updated_at AT TIME ZONE 'UTC') AS updated_at, token, stock_reserved, \
                       order_cancelled, redirect_url";

fn payment(row: &[DbValue]) -> Result<Payment, Problem> {
    let optional_uuid = |v: &DbValue| match v {
        DbValue::DbNull => Ok(None),
        other => uuid_text(other).map(Some),
    };
    Ok(Payment {
        id: uuid_text(&row[0])?,
        order_id: uuid_text(&row[1])?,
        user_id: optional_uuid(&row[2])?,
        amount_minor: decode(&row[3])?,
        currency: decode(&row[4])?,
        provider: decode(&row[5])?,
        status: decode(&row[6])?,
        reason: decode(&row[7])?,
        provider_ref: decode(&row[8])?,
        created_at: timestamp(&row[9])?,
        updated_at: timestamp(&row[10])?,
        token: decode(&row[11])?,
        stock_reserved: decode(&row[12])?,
        order_cancelled: decode(&row[13])?,
        redirect_url: decode(&row[14])?,
    })
}

use crate::providers::provider;

pub struct Db {
    pub connection: Connection,
    depth: std::cell::Cell<u32>,
}

impl Db {
    pub fn connect() -> Result<Self, Problem> {
        Ok(Self {
            connection: pg::connect("payments")?,
            depth: std::cell::Cell::new(0),
        })
    }

    pub fn transaction<T, E: From<Problem>>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Result<T, E> {
        pg::nested_transaction(&self.connection, "payments", &self.depth, || work(self))
    }

    pub fn by_id(&self, id: &str) -> Result<Option<Payment>, Problem> {
        self.one(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"), id)
    }

    pub fn by_order(&self, order: &str) -> Result<Option<Payment>, Problem> {
        self.one(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"),
            order,
        )
    }

    fn locked(&self, order: &str) -> Result<Option<Payment>, Problem> {
        self.one(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"),
            order,
        )
    }

    fn one(&self, sql: &str, id: &str) -> Result<Option<Payment>, Problem> {
        let rows = self.connection.query(sql, &[uuid(id)]).map_err(failed)?;
        rows.rows.first().map(|r| payment(r)).transpose()
    }

    /// `order.placed`: what to charge, and how.
    pub fn order_placed(&self, placed: &OrderPlaced) -> Result<(), Problem> {
        self.connection
            .execute(
                "INSERT INTO payments (order_id, user_id, amount_minor, currency, provider, token) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (order_id) DO UPDATE SET user_id = EXCLUDED.user_id, \
                   amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency, \
                   provider = EXCLUDED.provider, token = EXCLUDED.token, updated_at = now() \
                 WHERE payments.amount_minor IS NULL",
                &[
                    uuid(&placed.order_id),
                    uuid(&placed.user_id),
                    ParameterValue::Int64(placed.total_minor),
                    text(&placed.currency),
                    text(&placed.payment.provider),
                    text(&placed.payment.token),
                ],
            )
            .map_err(failed)?;
        self.charge_if_ready(&placed.order_id)
    }

    /// `inventory.reserved`: the stock is held, so the order may be charged.
    pub fn stock_reserved(&self, order: &str) -> Result<(), Problem> {
        self.connection
            .execute(
                "INSERT INTO payments (order_id, stock_reserved) VALUES ($1, true) \
                 ON CONFLICT (order_id) DO UPDATE SET stock_reserved = true, updated_at = now()",
                &[uuid(order)],
            )
            .map_err(failed)?;
        self.charge_if_ready(order)
    }

    /// Charges once the amount is known and the stock held, unless the
    /// order was cancelled meanwhile. The provider gets the order id as its
    /// idempotency key, so a charge repeated after a crash is not doubled.
    fn charge_if_ready(&self, order: &str) -> Result<(), Problem> {
        let Some(p) = self.locked(order)? else {
            return Ok(());
        };
        let ready = p.status() == PaymentStatus::Pending
            && p.stock_reserved
            && !p.order_cancelled
            && p.amount_minor.is_some();
        if !ready {
            return Ok(());
        }
        let (Some(amount), Some(currency), Some(token), Some(name)) =
            (p.amount_minor, &p.currency, &p.token, &p.provider)
        else {
            return Ok(());
        };
        let Some(provider) = provider(name) else {
            return self.settle(
                &p,
                PaymentStatus::Failed,
                Some(&format!("payment provider `{name}` is not available")),
                None,
            );
        };
        let charge = Charge {
            order_id: order,
            amount_minor: amount,
            currency,
            token,
        };
        match provider.charge(&charge) {
            ChargeOutcome::Succeeded { reference } => {
                self.settle(&p, PaymentStatus::Succeeded, None, Some(&reference))
            }
            // Not final yet: keep the reference, never charge again; the
            // provider's webhook settles it.
            ChargeOutcome::Pending { reference } => self.attempted(&p, &reference),
            ChargeOutcome::Redirect { reference, url } => self.awaiting_buyer(&p, &reference, &url),
            ChargeOutcome::Declined { reason } => {
                self.settle(&p, PaymentStatus::Failed, Some(&reason), None)
            }
            ChargeOutcome::Unavailable { reason } => Err(Problem::service_unavailable(format!(
                "the payment provider is unavailable: {reason}"
            ))),
        }
    }

    /// `order.cancelled`: no charge any more; a charge that already went
    /// through is refunded.
    pub fn order_cancelled(&self, order: &str) -> Result<(), Problem> {
        self.connection
            .execute(
                "INSERT INTO payments (order_id, order_cancelled) VALUES ($1, true) \
                 ON CONFLICT (order_id) DO UPDATE SET order_cancelled = true, updated_at = now()",
                &[uuid(order)],
            )
            .map_err(failed)?;
        let Some(p) = self.locked(order)? else {
            return Ok(());
        };
        match p.status() {
            // A charge in flight (the provider has not settled it) must not
            // be forgotten: if it succeeds, payment.succeeded refunds it.
            // The payment page is withdrawn.
            PaymentStatus::Pending if p.provider_ref.is_some() => {
                self.connection
                    .execute(
                        "UPDATE payments SET redirect_url = NULL, updated_at = now() WHERE id = $1",
                        &[uuid(&p.id)],
                    )
                    .map_err(failed)?;
                Ok(())
            }
            PaymentStatus::Pending => {
                self.settle(&p, PaymentStatus::Cancelled, Some("order cancelled"), None)
            }
            PaymentStatus::Succeeded => self.refund(&p, "order cancelled after payment"),
            _ => Ok(()),
        }
    }

    /// Refunds a succeeded payment (`order.refunded`, or an admin).
    pub fn refund_order(&self, order: &str, reason: &str) -> Result<Option<Payment>, Problem> {
        let Some(p) = self.locked(order)? else {
            return Ok(None);
        };
        match p.status() {
            PaymentStatus::Succeeded => self.refund(&p, reason)?,
            PaymentStatus::Refunded => {}
            other => {
                return Err(Problem::conflict(format!(
                    "payment {} is {}; only a succeeded payment can be refunded",
                    p.id,
                    other.as_str()
                )))
            }
        }
        self.by_order(order)
    }

    fn refund(&self, p: &Payment, reason: &str) -> Result<(), Problem> {
        let name = p.provider.as_deref().unwrap_or_default();
        let provider = provider(name).ok_or_else(|| failed(format!("no provider `{name}`")))?;
        provider
            .refund(
                p.provider_ref.as_deref().unwrap_or_default(),
                p.amount_minor.unwrap_or(0),
            )
            .map_err(|e| Problem::service_unavailable(format!("the refund failed: {e}")))?;
        self.settle(p, PaymentStatus::Refunded, Some(reason), None)
    }

    /// A charge the provider accepted but has not settled.
    fn attempted(&self, p: &Payment, reference: &str) -> Result<(), Problem> {
        self.connection
            .execute(
                "UPDATE payments SET provider_ref = $2, token = NULL, updated_at = now() WHERE id = $1",
                &[uuid(&p.id), text(reference)],
            )
            .map_err(failed)?;
        Ok(())
    }

    /// A redirect provider's charge: the buyer pays on `url`. The orders
    /// service learns it from `payment.action_required` and shows it.
    fn awaiting_buyer(&self, p: &Payment, reference: &str, url: &str) -> Result<(), Problem> {
        self.connection
            .execute(
                "UPDATE payments SET provider_ref = $2, redirect_url = $3, token = NULL, \
                   updated_at = now() WHERE id = $1",
                &[uuid(&p.id), text(reference), text(url)],
            )
            .map_err(failed)?;
        self.record(
            p,
            EventType::PaymentActionRequired,
            PaymentStatus::Pending,
            None,
            Some(url),
        )
    }

    /// A provider's final word (webhook, ITN) on its charge `reference` for
    /// `order`: settles the payment if it was pending. A success the payment
    /// does not count (it was settled otherwise meanwhile, or it is another
    /// charge) goes back through `payment.refund_due`, so no money stays
    /// with us for an order that does not have it. `new_reference`: the
    /// provider names its charge only now (PayFast's payment id).
    /// `Ok(false)` if the order has no payment here.
    pub fn provider_outcome(
        &self,
        order: &str,
        succeeded: bool,
        reason: Option<&str>,
        reference: &str,
        new_reference: bool,
    ) -> Result<bool, Problem> {
        let Some(current) = self.for_update(order)? else {
            return Ok(false);
        };
        if current.status() == PaymentStatus::Pending {
            let status = if succeeded {
                PaymentStatus::Succeeded
            } else {
                PaymentStatus::Failed
            };
            // A success for an order cancelled meanwhile is refunded by this
            // service's own handler of payment.succeeded
            // (`refund_if_cancelled`), with the trigger's retries, not here:
            // a provider's webhook must not fail because its refund does.
            self.settle(&current, status, reason, new_reference.then_some(reference))?;
            return Ok(true);
        }
        let this_charge = current.provider_ref.as_deref() == Some(reference);
        let counted = this_charge && matches!(current.status.as_str(), "succeeded" | "refunded");
        if succeeded && !counted {
            let provider = current.provider.clone().unwrap_or_default();
            self.refund_due(
                &current,
                reference,
                &format!("a {provider} charge the order does not count"),
            )?;
        }
        Ok(true)
    }

    /// `payment.succeeded` (our own): refunds it if its order was cancelled
    /// while the charge was in flight.
    pub fn refund_if_cancelled(&self, order: &str) -> Result<(), Problem> {
        match self.locked(order)? {
            Some(p) if p.status() == PaymentStatus::Succeeded && p.order_cancelled => {
                self.refund(&p, "order cancelled after payment")
            }
            _ => Ok(()),
        }
    }

    /// A provider charge that is not the order's payment (the buyer paid
    /// twice): `payment.refund_due`, refunded by this service's handler.
    pub fn refund_due(&self, p: &Payment, reference: &str, reason: &str) -> Result<(), Problem> {
        let due = RefundDue {
            order_id: p.order_id.clone(),
            provider: p.provider.clone().unwrap_or_default(),
            reference: reference.to_string(),
            amount_minor: p.amount_minor.unwrap_or(0),
            reason: reason.to_string(),
        };
        pg::record(
            &self.connection,
            &p.order_id,
            EventType::PaymentRefundDue,
            &due,
        )
    }

    /// Carries out a `payment.refund_due`.
    pub fn refund_stray(&self, due: &RefundDue) -> Result<(), Problem> {
        let provider = provider(&due.provider)
            .ok_or_else(|| failed(format!("no provider `{}`", due.provider)))?;
        provider
            .refund(&due.reference, due.amount_minor)
            .map_err(|e| Problem::service_unavailable(format!("the refund failed: {e}")))?;
        eprintln!(
            "payments: refunded {} charge {} for order {}: {}",
            due.provider, due.reference, due.order_id, due.reason
        );
        Ok(())
    }

    /// The payment of `order`, locked for the caller's transaction.
    pub fn for_update(&self, order: &str) -> Result<Option<Payment>, Problem> {
        self.locked(order)
    }

    /// The payment whose provider reference is `reference`.
    pub fn by_reference(&self, reference: &str) -> Result<Option<Payment>, Problem> {
        let rows = self
            .connection
            .query(
                &format!("SELECT {COLUMNS} FROM payments WHERE provider_ref = $1"),
                &[text(reference)],
            )
            .map_err(failed)?;
        rows.rows.first().map(|r| payment(r)).transpose()
    }

    /// Records the new status (and the event other services react to).
    fn settle(
        &self,
        p: &Payment,
        status: PaymentStatus,
        reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<(), Problem> {
        self.connection
            .execute(
                "UPDATE payments SET status = $2, reason = $3, \
                   provider_ref = COALESCE($4, provider_ref), token = NULL, redirect_url = NULL, \
                   updated_at = now() \
                 WHERE id = $1",
                &[
                    uuid(&p.id),
                    text(status.as_str()),
                    reason.map_or(ParameterValue::DbNull, text),
                    reference.map_or(ParameterValue::DbNull, text),
                ],
            )
            .map_err(failed)?;
        let event = match status {
            PaymentStatus::Succeeded => EventType::PaymentSucceeded,
            PaymentStatus::Failed => EventType::PaymentFailed,
            PaymentStatus::Refunded => EventType::PaymentRefunded,
            PaymentStatus::Pending | PaymentStatus::Cancelled => return Ok(()),
        };
        self.record(p, event, status, reason, None)
    }

    /// Writes `event` about `p` to the outbox, in the caller's transaction.
    fn record(
        &self,
        p: &Payment,
        event: EventType,
        status: PaymentStatus,
        reason: Option<&str>,
        redirect_url: Option<&str>,
    ) -> Result<(), Problem> {
        let payload = PaymentChanged {
            payment_id: p.id.clone(),
            order_id: p.order_id.clone(),
            user_id: p.user_id.clone().unwrap_or_default(),
            status,
            amount_minor: p.amount_minor.unwrap_or(0),
            currency: p.currency.clone().unwrap_or_default(),
            reason: reason.map(str::to_string),
            redirect_url: redirect_url.map(str::to_string),
        };
        pg::record(&self.connection, &p.order_id, event, &payload)
    }
}
