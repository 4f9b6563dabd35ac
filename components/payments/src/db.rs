//! The payments database. A payment row changes status in one transaction
//! with its event, and only along pending → succeeded | failed | cancelled,
//! succeeded → refunded.

use mart_domain::events::EventData;
use mart_domain::orders::OrderPlaced;
use mart_domain::payments::{
    Charge, ChargeOutcome, OnCancel, PaymentChanged, PaymentState, PaymentStatus, ProviderVerdict,
    Refund, RefundDue, RefundOutcome,
};
use mart_domain::DomainError;
use mart_guest::db::{self as pg, decode, text, timestamp, uuid, uuid_text};
use mart_guest::db::{DbValue, ParameterValue};
use serde::Serialize;

fn failed(e: impl std::fmt::Display) -> DomainError {
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

    /// What the saga's decisions (`mart_domain::payments::PaymentState`) read.
    fn state(&self) -> PaymentState {
        PaymentState {
            status: self.status(),
            stock_reserved: self.stock_reserved,
            order_cancelled: self.order_cancelled,
            order_known: self.amount_minor.is_some(),
            token_held: self.token.is_some(),
            charge_made: self.provider_ref.is_some(),
        }
    }
}

// Timestamps as UTC `timestamp`: Spin 4.0.x cannot return `timestamptz` (see mart_domain::sql).
const COLUMNS: &str = "id, order_id, user_id, amount_minor, currency, provider, status, reason, \
                       provider_ref, (created_at AT TIME ZONE 'UTC') AS created_at, \
                       (updated_at AT TIME ZONE 'UTC') AS updated_at, token, stock_reserved, \
                       order_cancelled, redirect_url";

fn payment(row: &[DbValue]) -> Result<Payment, DomainError> {
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

/// A refund decided (see migrations/payments/0007_refunds.sql).
struct RefundRow {
    id: String,
    order_id: String,
    provider: String,
    reference: String,
    amount_minor: i64,
    reason: String,
    of_payment: bool,
}

const REFUND_COLUMNS: &str = "id, order_id, provider, reference, amount_minor, reason, of_payment";

fn refund(row: &[DbValue]) -> Result<RefundRow, DomainError> {
    Ok(RefundRow {
        id: uuid_text(&row[0])?,
        order_id: uuid_text(&row[1])?,
        provider: decode(&row[2])?,
        reference: decode(&row[3])?,
        amount_minor: decode(&row[4])?,
        reason: decode(&row[5])?,
        of_payment: decode(&row[6])?,
    })
}

/// Whether an attempt at a refund may begin.
enum Lease {
    /// The refund was made already.
    Done,
    /// Another attempt holds it.
    Busy,
    /// This attempt holds it; the number of attempts begun, this one included.
    Attempt(i32),
}

mart_guest::service_database!(pub struct Db("payments"));

impl Db {
    pub async fn by_id(&self, id: &str) -> Result<Option<Payment>, DomainError> {
        self.one(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"), id)
            .await
    }

    pub async fn by_order(&self, order: &str) -> Result<Option<Payment>, DomainError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"),
            order,
        )
        .await
    }

    async fn locked(&self, order: &str) -> Result<Option<Payment>, DomainError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"),
            order,
        )
        .await
    }

    async fn one(&self, sql: &str, id: &str) -> Result<Option<Payment>, DomainError> {
        let rows = self
            .connection
            .query(sql, &[uuid(id)])
            .await
            .map_err(failed)?;
        rows.rows.first().map(|r| payment(r)).transpose()
    }

    /// `order.placed`: what to charge, and how.
    pub async fn order_placed(&self, placed: &OrderPlaced) -> Result<(), DomainError> {
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
            .await
            .map_err(failed)?;
        self.charge_if_ready(&placed.order_id).await
    }

    /// `inventory.reserved`: the stock is held, so the order may be charged.
    pub async fn stock_reserved(&self, order: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "INSERT INTO payments (order_id, stock_reserved) VALUES ($1, true) \
                 ON CONFLICT (order_id) DO UPDATE SET stock_reserved = true, updated_at = now()",
                &[uuid(order)],
            )
            .await
            .map_err(failed)?;
        self.charge_if_ready(order).await
    }

    /// Charges once the amount is known and the stock held, unless the
    /// order was cancelled meanwhile. The provider gets the order id as its
    /// idempotency key, so a charge repeated after a crash is not doubled.
    async fn charge_if_ready(&self, order: &str) -> Result<(), DomainError> {
        let Some(p) = self.locked(order).await? else {
            return Ok(());
        };
        if !p.state().ready_to_charge() {
            return Ok(());
        }
        let (Some(amount), Some(currency), Some(token), Some(name)) =
            (p.amount_minor, &p.currency, &p.token, &p.provider)
        else {
            return Ok(());
        };
        let Some(provider) = provider(name).await else {
            return self
                .settle(
                    &p,
                    PaymentStatus::Failed,
                    Some(&format!("payment provider `{name}` is not available")),
                    None,
                )
                .await;
        };
        let charge = Charge {
            order_id: order,
            amount_minor: amount,
            currency,
            token,
        };
        match provider.charge(&charge).await {
            ChargeOutcome::Succeeded { reference } => {
                self.settle(&p, PaymentStatus::Succeeded, None, Some(&reference))
                    .await
            }
            // Not final yet: keep the reference, never charge again; the
            // provider's webhook settles it.
            ChargeOutcome::Pending { reference } => self.attempted(&p, &reference).await,
            ChargeOutcome::Redirect { reference, url } => {
                self.awaiting_buyer(&p, &reference, &url).await
            }
            ChargeOutcome::Declined { reason } => {
                self.settle(&p, PaymentStatus::Failed, Some(&reason), None)
                    .await
            }
            ChargeOutcome::Unavailable { reason } => Err(DomainError::unavailable(format!(
                "the payment provider is unavailable: {reason}"
            ))),
        }
    }

    /// `order.cancelled`: no charge any more; a charge that already went
    /// through is refunded.
    pub async fn order_cancelled(&self, order: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "INSERT INTO payments (order_id, order_cancelled) VALUES ($1, true) \
                 ON CONFLICT (order_id) DO UPDATE SET order_cancelled = true, updated_at = now()",
                &[uuid(order)],
            )
            .await
            .map_err(failed)?;
        let Some(p) = self.locked(order).await? else {
            return Ok(());
        };
        match p.state().on_order_cancelled() {
            // If the charge in flight succeeds, payment.succeeded refunds it.
            OnCancel::WithdrawPaymentPage => {
                self.connection
                    .execute(
                        "UPDATE payments SET redirect_url = NULL, updated_at = now() WHERE id = $1",
                        &[uuid(&p.id)],
                    )
                    .await
                    .map_err(failed)?;
                Ok(())
            }
            OnCancel::Cancel => {
                self.settle(&p, PaymentStatus::Cancelled, Some("order cancelled"), None)
                    .await
            }
            OnCancel::Refund => {
                self.refund_payment(&p, "order cancelled after payment")
                    .await
            }
            OnCancel::Nothing => Ok(()),
        }
    }

    /// Decides to refund a succeeded payment (`order.refunded`, or an
    /// admin); `carry_out_refunds` or the handler of `payment.refund_due`
    /// then makes it.
    pub async fn refund_order(
        &self,
        order: &str,
        reason: &str,
    ) -> Result<Option<Payment>, DomainError> {
        let Some(p) = self.locked(order).await? else {
            return Ok(None);
        };
        if p.state().on_refund_request()? {
            self.refund_payment(&p, reason).await?;
        }
        self.by_order(order).await
    }

    /// Decides to give the order's counted payment back.
    async fn refund_payment(&self, p: &Payment, reason: &str) -> Result<(), DomainError> {
        let reference = p.provider_ref.clone().ok_or_else(|| {
            failed(format!(
                "payment {} succeeded without the provider's reference",
                p.id
            ))
        })?;
        self.refund_due(p, &reference, reason, true).await
    }

    /// A charge the provider accepted but has not settled.
    async fn attempted(&self, p: &Payment, reference: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE payments SET provider_ref = $2, token = NULL, updated_at = now() WHERE id = $1",
                &[uuid(&p.id), text(reference)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// A redirect provider's charge: the buyer pays on `url`. The orders
    /// service learns it from `payment.action_required` and shows it.
    async fn awaiting_buyer(
        &self,
        p: &Payment,
        reference: &str,
        url: &str,
    ) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE payments SET provider_ref = $2, redirect_url = $3, token = NULL, \
                   updated_at = now() WHERE id = $1",
                &[uuid(&p.id), text(reference), text(url)],
            )
            .await
            .map_err(failed)?;
        self.record_change(
            p,
            EventData::PaymentActionRequired,
            PaymentStatus::Pending,
            None,
            Some(url),
        )
        .await
    }

    /// A provider's final word (webhook, ITN) on its charge `reference` for
    /// `order`: settles the payment if it was pending. A success the payment
    /// does not count (it was settled otherwise meanwhile, or it is another
    /// charge) goes back through `payment.refund_due`, so no money stays
    /// with us for an order that does not have it. `new_reference`: the
    /// provider names its charge only now (PayFast's payment id).
    /// `Ok(false)` if the order has no payment here.
    pub async fn provider_outcome(
        &self,
        order: &str,
        succeeded: bool,
        reason: Option<&str>,
        reference: &str,
        new_reference: bool,
    ) -> Result<bool, DomainError> {
        let Some(current) = self.for_update(order).await? else {
            return Ok(false);
        };
        let this_charge = current.provider_ref.as_deref() == Some(reference);
        let counted = this_charge
            && matches!(
                current.status(),
                PaymentStatus::Succeeded | PaymentStatus::Refunded
            );
        match current.state().on_provider_outcome(succeeded, counted) {
            // A success for an order cancelled meanwhile is refunded by this
            // service's own handler of payment.succeeded
            // (`refund_if_cancelled`), with the trigger's retries, not here:
            // a provider's webhook must not fail because its refund does.
            ProviderVerdict::Settle(status) => {
                self.settle(&current, status, reason, new_reference.then_some(reference))
                    .await?
            }
            ProviderVerdict::RefundStrayCharge => {
                let provider = current.provider.clone().unwrap_or_default();
                self.refund_due(
                    &current,
                    reference,
                    &format!("a {provider} charge the order does not count"),
                    false,
                )
                .await?
            }
            ProviderVerdict::Nothing => {}
        }
        Ok(true)
    }

    /// `payment.succeeded` (our own): refunds it if its order was cancelled
    /// while the charge was in flight.
    pub async fn refund_if_cancelled(&self, order: &str) -> Result<(), DomainError> {
        match self.locked(order).await? {
            Some(p) if p.state().refund_late_success() => {
                self.refund_payment(&p, "order cancelled after payment")
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Decides, in the caller's transaction, that the provider's charge
    /// `reference` goes back: the order's payment (`of_payment`) or a
    /// charge outside it (the buyer paid twice). One refund per charge;
    /// `payment.refund_due` makes this service's handler carry it out.
    async fn refund_due(
        &self,
        p: &Payment,
        reference: &str,
        reason: &str,
        of_payment: bool,
    ) -> Result<(), DomainError> {
        let due = RefundDue {
            order_id: p.order_id.clone(),
            provider: p.provider.clone().unwrap_or_default(),
            reference: reference.to_string(),
            amount_minor: p.amount_minor.unwrap_or(0),
            reason: reason.to_string(),
        };
        if self.record_refund(&due, of_payment).await? {
            self.record(&p.order_id, &EventData::PaymentRefundDue(due))
                .await?;
        }
        Ok(())
    }

    /// Records the refund unless the charge has one already; whether it
    /// was new.
    async fn record_refund(&self, due: &RefundDue, of_payment: bool) -> Result<bool, DomainError> {
        let inserted = self
            .connection
            .execute(
                "INSERT INTO refunds (order_id, provider, reference, amount_minor, reason, of_payment) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, reference) DO NOTHING",
                &[
                    uuid(&due.order_id),
                    text(&due.provider),
                    text(&due.reference),
                    ParameterValue::Int64(due.amount_minor),
                    text(&due.reason),
                    ParameterValue::Boolean(of_payment),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(inserted == 1)
    }

    /// Carries out a `payment.refund_due`, outside any transaction.
    pub async fn carry_out(&self, due: &RefundDue) -> Result<(), DomainError> {
        // An event written before refunds were recorded names only a
        // stray charge; it is recorded now.
        self.record_refund(due, false).await?;
        let rows = self
            .connection
            .query(
                &format!(
                    "SELECT {REFUND_COLUMNS} FROM refunds WHERE provider = $1 AND reference = $2"
                ),
                &[text(&due.provider), text(&due.reference)],
            )
            .await
            .map_err(failed)?;
        match rows.rows.first() {
            Some(row) => self.attempt(&refund(row)?).await,
            None => Err(failed(format!("the refund of {} vanished", due.reference))),
        }
    }

    /// Carries out the refunds decided for `order` and not made yet (an
    /// admin's refund answers once the money is back).
    pub async fn carry_out_refunds(&self, order: &str) -> Result<(), DomainError> {
        let rows = self
            .connection
            .query(
                &format!(
                    "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 AND status = 'due'"
                ),
                &[uuid(order)],
            )
            .await
            .map_err(failed)?;
        for row in &rows.rows {
            self.attempt(&refund(row)?).await?;
        }
        Ok(())
    }

    /// One attempt at `refund`: leased (one attempt at a time), the
    /// provider asked outside any transaction, the outcome recorded. Done
    /// refunds are left alone, so asking again is safe.
    async fn attempt(&self, refund: &RefundRow) -> Result<(), DomainError> {
        let attempt = match self.lease(&refund.id).await? {
            Lease::Done => return Ok(()),
            Lease::Busy => {
                return Err(DomainError::unavailable(format!(
                    "another attempt at refunding {} is under way",
                    refund.reference
                )))
            }
            Lease::Attempt(n) => n,
        };
        let Some(provider) = provider(&refund.provider).await else {
            self.release(&refund.id).await?;
            return Err(failed(format!(
                "payment provider `{}` is not configured; the refund of {} waits for it",
                refund.provider, refund.reference
            )));
        };
        let outcome = provider
            .refund(&Refund {
                reference: &refund.reference,
                amount_minor: refund.amount_minor,
                reason: &refund.reason,
                retried: attempt > 1,
            })
            .await;
        match outcome {
            RefundOutcome::Refunded => self.transaction(async |db| db.refunded(refund).await).await,
            RefundOutcome::Unavailable { reason } => {
                self.release(&refund.id).await?;
                Err(DomainError::unavailable(format!(
                    "the refund of {} failed: {reason}",
                    refund.reference
                )))
            }
            // Not retried: it would be refused again. The refund stays due,
            // its refusal recorded (`mart check` reports it), and the event
            // goes to the dead-letter topic, for an operator.
            RefundOutcome::Refused { reason } => {
                self.connection
                    .execute(
                        "UPDATE refunds SET refused = $2, leased_until = NULL WHERE id = $1",
                        &[uuid(&refund.id), text(&reason)],
                    )
                    .await
                    .map_err(failed)?;
                Err(DomainError::conflict(reason))
            }
        }
    }

    /// Takes the refund for one attempt (two minutes, beyond any
    /// component's deadline, so a crashed attempt frees it by itself).
    async fn lease(&self, id: &str) -> Result<Lease, DomainError> {
        let taken = self
            .connection
            .query(
                "UPDATE refunds SET attempts = attempts + 1, leased_until = now() + interval '2 minutes' \
                 WHERE id = $1 AND status = 'due' AND (leased_until IS NULL OR leased_until < now()) \
                 RETURNING attempts",
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        if let Some(row) = taken.rows.first() {
            let attempts: i32 = decode(&row[0])?;
            return Ok(Lease::Attempt(attempts));
        }
        let status = self
            .connection
            .query("SELECT status FROM refunds WHERE id = $1", &[uuid(id)])
            .await
            .map_err(failed)?;
        match status.rows.first().map(|row| decode::<String>(&row[0])) {
            Some(Ok(status)) if status == "done" => Ok(Lease::Done),
            _ => Ok(Lease::Busy),
        }
    }

    async fn release(&self, id: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE refunds SET leased_until = NULL WHERE id = $1",
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The provider gave the money back: the refund is done and, when it
    /// was the order's payment, the payment is refunded (and says so).
    async fn refunded(&self, refund: &RefundRow) -> Result<(), DomainError> {
        let updated = self
            .connection
            .execute(
                "UPDATE refunds SET status = 'done', done_at = now(), leased_until = NULL, \
                   refused = NULL WHERE id = $1 AND status = 'due'",
                &[uuid(&refund.id)],
            )
            .await
            .map_err(failed)?;
        if updated == 0 {
            return Ok(());
        }
        if !refund.of_payment {
            eprintln!(
                "payments: refunded {} charge {} for order {}: {}",
                refund.provider, refund.reference, refund.order_id, refund.reason
            );
            return Ok(());
        }
        match self.locked(&refund.order_id).await? {
            Some(p) if p.status() == PaymentStatus::Succeeded => {
                self.settle(&p, PaymentStatus::Refunded, Some(&refund.reason), None)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// The payment of `order`, locked for the caller's transaction.
    pub async fn for_update(&self, order: &str) -> Result<Option<Payment>, DomainError> {
        self.locked(order).await
    }

    /// The payment whose provider reference is `reference`.
    pub async fn by_reference(&self, reference: &str) -> Result<Option<Payment>, DomainError> {
        let rows = self
            .connection
            .query(
                &format!("SELECT {COLUMNS} FROM payments WHERE provider_ref = $1"),
                &[text(reference)],
            )
            .await
            .map_err(failed)?;
        rows.rows.first().map(|r| payment(r)).transpose()
    }

    /// Records the new status (and the event other services react to).
    async fn settle(
        &self,
        p: &Payment,
        status: PaymentStatus,
        reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<(), DomainError> {
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
            .await
            .map_err(failed)?;
        let event = match status {
            PaymentStatus::Succeeded => EventData::PaymentSucceeded,
            PaymentStatus::Failed => EventData::PaymentFailed,
            PaymentStatus::Refunded => EventData::PaymentRefunded,
            PaymentStatus::Pending | PaymentStatus::Cancelled => return Ok(()),
        };
        self.record_change(p, event, status, reason, None).await
    }

    /// Writes the `kind` of change of `p` to the outbox, in the caller's
    /// transaction.
    async fn record_change(
        &self,
        p: &Payment,
        kind: fn(PaymentChanged) -> EventData,
        status: PaymentStatus,
        reason: Option<&str>,
        redirect_url: Option<&str>,
    ) -> Result<(), DomainError> {
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
        self.record(&p.order_id, &kind(payload)).await
    }
}
