//! The orders database: every statement parameterised, every change of
//! status in one transaction with its history row and its event.

use mart_domain::events::EventData;
use mart_domain::orders::{Address, OrderChanged, OrderLine, OrderPlaced, Status};
use mart_domain::DomainError;
use mart_guest::db::{self as pg, decode, text, timestamp, uuid, uuid_text};
use mart_guest::db::{DbValue, ParameterValue};
use serde::Serialize;

fn failed(e: impl std::fmt::Display) -> DomainError {
    pg::failed("orders", e)
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
}

/// One status change of one order, for the activity feed.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub order_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub shipping_address: serde_json::Value,
    pub payment_provider: String,
    /// Redirect providers (PayFast): the page where the buyer pays, while
    /// the order waits for payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_redirect_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<OrderLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    #[serde(skip)]
    pub request_hash: Option<String>,
}

impl Order {
    pub fn status(&self) -> Result<Status, DomainError> {
        Status::parse(&self.status).ok_or_else(|| failed(format!("unknown status {}", self.status)))
    }
}

/// What a new order is made of.
pub struct NewOrder<'a> {
    pub user_id: &'a str,
    pub currency: &'a str,
    pub lines: &'a [OrderLine],
    pub address: &'a Address,
    pub payment: &'a mart_domain::orders::PaymentMethod,
    pub cart_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: &'a str,
}

/// The result of placing an order.
pub enum Placed {
    Created(Order),
    /// The same Idempotency-Key was used before: that order.
    Existing(Order),
}

/// Orders one expiry transaction cancels at most.
pub const EXPIRY_BATCH: usize = 100;

const COLUMNS: &str = "id, user_id, status, currency, total_minor, shipping_address::text, \
                       payment_provider, (created_at AT TIME ZONE 'UTC') AS created_at, \
                       (updated_at AT TIME ZONE 'UTC') AS updated_at, request_hash, payment_redirect_url";

fn order(row: &[DbValue]) -> Result<Order, DomainError> {
    let address: String = decode(&row[5])?;
    let status: String = decode(&row[2])?;
    // The payment page matters only while the order waits for payment.
    let awaiting_payment = matches!(
        Status::parse(&status),
        Some(Status::Pending | Status::Reserved)
    );
    let redirect: Option<String> = decode(&row[10])?;
    Ok(Order {
        payment_redirect_url: redirect.filter(|_| awaiting_payment),
        id: uuid_text(&row[0])?,
        user_id: uuid_text(&row[1])?,
        status,
        currency: decode(&row[3])?,
        total_minor: decode(&row[4])?,
        shipping_address: serde_json::from_str(&address).map_err(failed)?,
        payment_provider: decode(&row[6])?,
        created_at: timestamp(&row[7])?,
        updated_at: timestamp(&row[8])?,
        request_hash: decode(&row[9])?,
        lines: None,
        history: None,
    })
}

mart_guest::service_database!(pub struct Db("orders"));

impl Db {
    /// Creates the order as `pending` with `order.placed`, or returns the
    /// order an earlier request with the same Idempotency-Key created.
    pub async fn place(&self, new: &NewOrder<'_>) -> Result<Placed, DomainError> {
        self.transaction(async |db| {
            db.ensure_room_for_an_open_order(new).await?;
            let total = mart_domain::orders::total_minor(new.lines);
            let address = serde_json::to_vec(new.address).map_err(failed)?;
            let key = new.idempotency_key.map_or(ParameterValue::DbNull, text);
            // A concurrent request with the same key waits on the unique
            // index and then inserts nothing.
            let inserted = db
                .connection
                .query(
                    &format!(
                        "INSERT INTO orders (user_id, status, currency, total_minor, shipping_address, \
                         payment_provider, cart_id, idempotency_key, request_hash) \
                         VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING {COLUMNS}"
                    ),
                    &[
                        uuid(new.user_id),
                        text(new.currency),
                        ParameterValue::Int64(total),
                        ParameterValue::Jsonb(address),
                        text(&new.payment.provider),
                        new.cart_id.map_or(ParameterValue::DbNull, uuid),
                        key,
                        text(new.request_hash),
                    ],
                )
                .await
                .map_err(|e| match pg::sql_state(&e) {
                    // The key's own conflict is DO NOTHING above; the only
                    // other unique index is one order per cart.
                    Some("23505") => DomainError::conflict(format!(
                        "cart {} has already been ordered; see GET /orders",
                        new.cart_id.unwrap_or_default()
                    )),
                    _ => failed(e),
                })?;
            let Some(row) = inserted.rows.first() else {
                let key = new.idempotency_key.unwrap_or_default();
                let existing = db
                    .by_key(new.user_id, key)
                    .await?
                    .ok_or_else(|| failed("an order with this key vanished"))?;
                return Ok(Placed::Existing(existing));
            };
            let mut created = order(row)?;
            for line in new.lines {
                db.connection
                    .execute(
                        "INSERT INTO order_lines (order_id, product_id, name, quantity, unit_price_minor) \
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            uuid(&created.id),
                            uuid(&line.product_id),
                            text(&line.name),
                            ParameterValue::Int32(line.quantity),
                            ParameterValue::Int64(line.unit_price_minor),
                        ],
                    )
                    .await
                    .map_err(failed)?;
            }
            db.add_history(&created.id, Status::Pending, None).await?;
            db.record(
                &created.id,
                &EventData::OrderPlaced(OrderPlaced {
                    order_id: created.id.clone(),
                    user_id: created.user_id.clone(),
                    cart_id: new.cart_id.map(str::to_string),
                    lines: new.lines.to_vec(),
                    total_minor: total,
                    currency: created.currency.clone(),
                    payment: new.payment.clone(),
                }),
            )
            .await?;
            created.lines = Some(new.lines.to_vec());
            created.history = Some(db.history(&created.id).await?);
            Ok(Placed::Created(created))
        })
        .await
    }

    pub async fn by_key(&self, user: &str, key: &str) -> Result<Option<Order>, DomainError> {
        let rows = self
            .connection
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2"
                ),
                &[uuid(user), text(key)],
            )
            .await
            .map_err(failed)?;
        match rows.rows.first() {
            Some(row) => self.with_details(order(row)?).await.map(Some),
            None => Ok(None),
        }
    }

    /// The order with its lines and history.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, DomainError> {
        match self.order_row(id, false).await? {
            Some(order) => self.with_details(order).await.map(Some),
            None => Ok(None),
        }
    }

    /// The order row, locked for update when `lock`.
    async fn order_row(&self, id: &str, lock: bool) -> Result<Option<Order>, DomainError> {
        let lock = if lock { " FOR UPDATE" } else { "" };
        let rows = self
            .connection
            .query(
                &format!("SELECT {COLUMNS} FROM orders WHERE id = $1{lock}"),
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        rows.rows.first().map(|r| order(r)).transpose()
    }

    async fn with_details(&self, mut order: Order) -> Result<Order, DomainError> {
        let rows = self
            .connection
            .query(
                "SELECT product_id, name, quantity, unit_price_minor FROM order_lines \
                 WHERE order_id = $1 ORDER BY product_id",
                &[uuid(&order.id)],
            )
            .await
            .map_err(failed)?;
        order.lines = Some(
            rows.rows
                .iter()
                .map(|r| {
                    Ok(OrderLine {
                        product_id: uuid_text(&r[0])?,
                        name: decode(&r[1])?,
                        quantity: decode(&r[2])?,
                        unit_price_minor: decode(&r[3])?,
                    })
                })
                .collect::<Result<_, DomainError>>()?,
        );
        order.history = Some(self.history(&order.id).await?);
        Ok(order)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, DomainError> {
        let rows = self
            .connection
            .query(
                "SELECT status, reason, (at AT TIME ZONE 'UTC') AS at FROM order_history WHERE order_id = $1 ORDER BY id",
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        rows.rows
            .iter()
            .map(|r| {
                Ok(HistoryEntry {
                    status: decode(&r[0])?,
                    reason: decode(&r[1])?,
                    at: timestamp(&r[2])?,
                })
            })
            .collect()
    }

    async fn add_history(
        &self,
        id: &str,
        status: Status,
        reason: Option<&str>,
    ) -> Result<(), DomainError> {
        self.connection
            .execute(
                "INSERT INTO order_history (order_id, status, reason) VALUES ($1, $2, $3)",
                &[
                    uuid(id),
                    text(status.as_str()),
                    reason.map_or(ParameterValue::DbNull, text),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// `payment.action_required`: where the buyer pays (in the caller's
    /// transaction).
    pub async fn set_payment_redirect(&self, order: &str, url: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE orders SET payment_redirect_url = $2, updated_at = now() WHERE id = $1",
                &[uuid(order), text(url)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// How many orders (of `user`, or all) are in each status that has any.
    pub async fn counts_by_status(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<(String, i64)>, DomainError> {
        let rows = match user {
            Some(user) => {
                self.connection
                    .query(
                        "SELECT status, count(*) FROM orders WHERE user_id = $1 GROUP BY status",
                        &[uuid(user)],
                    )
                    .await
            }
            None => {
                self.connection
                    .query("SELECT status, count(*) FROM orders GROUP BY status", &[])
                    .await
            }
        }
        .map_err(failed)?;
        rows.rows
            .iter()
            .map(|r| Ok((decode(&r[0])?, decode(&r[1])?)))
            .collect()
    }

    /// The latest `limit` status changes (of `user`'s orders, or all), newest first.
    pub async fn recent_activity(
        &self,
        user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Activity>, DomainError> {
        let limit = ParameterValue::Int64(i64::from(limit));
        let rows = match user {
            Some(user) => {
                self.connection
                    .query(
                        "SELECT h.order_id, h.status, h.reason, (h.at AT TIME ZONE 'UTC') AS at FROM order_history h \
                         JOIN orders o ON o.id = h.order_id WHERE o.user_id = $1 \
                         ORDER BY h.at DESC, h.id DESC LIMIT $2",
                        &[uuid(user), limit],
                    )
                    .await
            }
            None => {
                self.connection
                    .query(
                        "SELECT order_id, status, reason, (at AT TIME ZONE 'UTC') AS at FROM order_history \
                         ORDER BY at DESC, id DESC LIMIT $1",
                        &[limit],
                    )
                    .await
            }
        }
        .map_err(failed)?;
        rows.rows
            .iter()
            .map(|r| {
                Ok(Activity {
                    order_id: uuid_text(&r[0])?,
                    status: decode(&r[1])?,
                    reason: decode(&r[2])?,
                    at: timestamp(&r[3])?,
                })
            })
            .collect()
    }

    /// Orders newest first, after `cursor` (created_at, id), filtered.
    pub async fn list(
        &self,
        user: Option<&str>,
        status: Option<Status>,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<Order>, DomainError> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(user) = user {
            params.push(uuid(user));
            conditions.push(format!("user_id = ${}", params.len()));
        }
        if let Some(status) = status {
            params.push(text(status.as_str()));
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some((at, id)) = after {
            params.push(text(at));
            params.push(uuid(id));
            conditions.push(format!(
                "(created_at, id) < (${}::text::timestamptz, ${})",
                params.len() - 1,
                params.len()
            ));
        }
        params.push(ParameterValue::Int64(i64::from(limit)));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM orders {filter} ORDER BY created_at DESC, id DESC LIMIT ${}",
            params.len()
        );
        let rows = self.connection.query(&sql, &params).await.map_err(failed)?;
        rows.rows.iter().map(|r| order(r)).collect()
    }

    /// Moves an order to `next` (if the machine allows it), with history
    /// and the matching event, in one transaction (part of the caller's, if
    /// one is open). `Ok(None)` when the order is already there (a repeated
    /// request or event).
    pub async fn change_status(
        &self,
        id: &str,
        next: Status,
        reason: Option<&str>,
    ) -> Result<Option<Order>, DomainError> {
        self.transaction(async |db| db.move_order(id, next, reason).await)
            .await
    }

    async fn move_order(
        &self,
        id: &str,
        next: Status,
        reason: Option<&str>,
    ) -> Result<Option<Order>, DomainError> {
        let mut order = self
            .order_row(id, true)
            .await?
            .ok_or_else(|| DomainError::not_found(format!("no order has id {id}")))?;
        let current = order.status()?;
        if current == next {
            return Ok(None);
        }
        current.transition(next)?;
        self.connection
            .execute(
                "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1",
                &[uuid(id), text(next.as_str())],
            )
            .await
            .map_err(failed)?;
        self.add_history(id, next, reason).await?;
        order.status = next.as_str().to_string();
        if let Some(event) = event_for(next) {
            self.record(
                id,
                &event(OrderChanged {
                    order_id: order.id.clone(),
                    user_id: order.user_id.clone(),
                    status: next,
                    reason: reason.map(str::to_string),
                    total_minor: order.total_minor,
                    currency: order.currency.clone(),
                }),
            )
            .await?;
        }
        Ok(Some(order))
    }
}

impl Db {
    /// Every open order holds stock until it is paid or expires: a customer
    /// may have `MAX_OPEN_ORDERS` at once (a repeated Idempotency-Key is
    /// answered before this). The customer's placements are serialised by
    /// a transaction lock, so parallel requests cannot all pass the count.
    async fn ensure_room_for_an_open_order(&self, new: &NewOrder<'_>) -> Result<(), DomainError> {
        // The seed keeps this lock's keys apart from other advisory locks.
        self.connection
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 42))",
                &[text(new.user_id)],
            )
            .await
            .map_err(failed)?;
        let rows = self
            .connection
            .query(
                "SELECT count(*) FROM orders WHERE user_id = $1 AND status IN ('pending', 'reserved')",
                &[uuid(new.user_id)],
            )
            .await
            .map_err(failed)?;
        let open: i64 = rows
            .rows
            .first()
            .map(|r| decode(&r[0]))
            .transpose()?
            .unwrap_or(0);
        if open >= mart_domain::orders::MAX_OPEN_ORDERS {
            return Err(DomainError::conflict(format!(
                "you have {open} orders waiting for stock or payment; pay or cancel one first"
            )));
        }
        Ok(())
    }

    /// Cancels up to `EXPIRY_BATCH` open orders (`pending`, `reserved`)
    /// older than `deadline` ("payment timed out"), releasing their stock
    /// through the saga, skipping orders another request is handling.
    pub async fn expire_stale(&self, deadline_secs: i64) -> Result<usize, DomainError> {
        self.transaction(async |db| {
            let rows = db
                .connection
                .query(
                    &format!(
                        "SELECT id FROM orders WHERE status IN ('pending', 'reserved') \
                         AND created_at < now() - ($1::bigint * interval '1 second') \
                         ORDER BY created_at LIMIT {EXPIRY_BATCH} FOR UPDATE SKIP LOCKED"
                    ),
                    &[ParameterValue::Int64(deadline_secs)],
                )
                .await
                .map_err(failed)?;
            let reason = mart_domain::orders::CancelReason::PaymentTimedOut.as_str();
            for row in &rows.rows {
                let id = uuid_text(&row[0])?;
                db.change_status(&id, Status::Cancelled, Some(reason))
                    .await?;
            }
            Ok(rows.rows.len())
        })
        .await
    }
}

/// The event a move announces; `reserved` is internal to the saga.
fn event_for(status: Status) -> Option<fn(OrderChanged) -> EventData> {
    match status {
        Status::Paid => Some(EventData::OrderPaid),
        Status::Cancelled => Some(EventData::OrderCancelled),
        Status::Refunded => Some(EventData::OrderRefunded),
        Status::Shipped => Some(EventData::OrderShipped),
        Status::Delivered => Some(EventData::OrderDelivered),
        Status::Pending | Status::Reserved => None,
    }
}
