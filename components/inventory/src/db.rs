//! The inventory database: every statement parameterised, every multi-step
//! change in one transaction.

use mart_domain::events::{EventData, InventoryChanged, InventoryRejected, ReservedLine};
use mart_domain::inventory::{Line, Stock};
use mart_domain::inventory::{NothingMoved, ReservationStatus, ReservationStep};
use mart_domain::DomainError;
use mart_guest::db::{self as pg, decode, sql_state, text, timestamp, uuid, uuid_text};
use mart_guest::db::{DbValue, ParameterValue};
use serde::Serialize;

#[derive(Serialize)]
pub struct StockItem {
    pub product_id: String,
    pub on_hand: i32,
    pub reserved: i32,
    pub available: i32,
    pub updated_at: String,
}

#[derive(Serialize)]
pub struct AdjustmentEntry {
    pub delta: i32,
    pub on_hand_after: i32,
    pub reason: String,
    pub actor: String,
    pub created_at: String,
}

/// The result of an idempotent operation.
pub enum Outcome {
    Done(InventoryChanged),
    /// The same request was already applied; here is its result.
    AlreadyDone(InventoryChanged),
    Rejected(String),
}

// Timestamps as UTC `timestamp`: Spin 4.0.x cannot return `timestamptz` (see mart_domain::sql).
const STOCK_COLUMNS: &str =
    "product_id, on_hand, reserved, (updated_at AT TIME ZONE 'UTC') AS updated_at";

mart_guest::service_database!(pub struct Db("inventory"));

fn failed(e: impl std::fmt::Display) -> DomainError {
    pg::failed("inventory", e)
}

fn stock_item(row: &[DbValue]) -> Result<StockItem, DomainError> {
    let [id, on_hand, reserved, updated_at] = row else {
        return Err(failed("unexpected stock columns"));
    };
    let stock = Stock {
        on_hand: decode(on_hand)?,
        reserved: decode(reserved)?,
    };
    Ok(StockItem {
        product_id: uuid_text(id)?,
        on_hand: stock.on_hand,
        reserved: stock.reserved,
        available: stock.available(),
        updated_at: timestamp(updated_at)?,
    })
}

/// An order's reservation as the API answers it and the events carry it.
fn reservation(order: &str, status: &str, lines: &[Line]) -> InventoryChanged {
    InventoryChanged {
        order_id: order.to_string(),
        status: status.to_string(),
        lines: lines
            .iter()
            .map(|l| ReservedLine {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
            })
            .collect(),
    }
}

impl Db {
    pub async fn stock(&self, product: &str) -> Result<Option<StockItem>, DomainError> {
        let sql = format!("SELECT {STOCK_COLUMNS} FROM stock WHERE product_id = $1");
        let rows = self
            .connection
            .query(&sql, &[uuid(product)])
            .await
            .map_err(failed)?;
        rows.rows.first().map(|r| stock_item(r)).transpose()
    }

    pub async fn stock_many(&self, products: &[String]) -> Result<Vec<StockItem>, DomainError> {
        let sql = format!("SELECT {STOCK_COLUMNS} FROM stock WHERE product_id = ANY($1::text[]::uuid[]) ORDER BY product_id");
        let ids = ParameterValue::ArrayStr(products.iter().map(|p| Some(p.clone())).collect());
        let rows = self.connection.query(&sql, &[ids]).await.map_err(failed)?;
        rows.rows.iter().map(|r| stock_item(r)).collect()
    }

    /// Sets on_hand (creating the record), never below what is reserved.
    pub async fn set_on_hand(
        &self,
        product: &str,
        on_hand: i32,
        actor: &str,
    ) -> Result<StockItem, DomainError> {
        self.transaction(async |db| {
            let before = db
                .connection
                .query("SELECT on_hand FROM stock WHERE product_id = $1 FOR UPDATE", &[uuid(product)])
                .await
                .map_err(failed)?;
            let old: i32 = match before.rows.first() {
                Some(row) => decode(&row[0])?,
                None => 0,
            };
            let sql = format!(
                "INSERT INTO stock (product_id, on_hand) VALUES ($1, $2)
                 ON CONFLICT (product_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()
                 RETURNING {STOCK_COLUMNS}"
            );
            let rows = db
                .connection
                .query(&sql, &[uuid(product), ParameterValue::Int32(on_hand)])
                .await
                .map_err(|e| if sql_state(&e) == Some("23514") { below_reserved() } else { failed(e) })?;
            let item = stock_item(rows.rows.first().ok_or_else(|| failed("upsert returned no row"))?)?;
            db.audit(product, on_hand - old, on_hand, "stock set", actor).await?;
            Ok(item)
        })
        .await
    }

    pub async fn adjust(
        &self,
        product: &str,
        delta: i32,
        reason: &str,
        actor: &str,
    ) -> Result<StockItem, DomainError> {
        self.transaction(async |db| {
            let sql = format!(
                "UPDATE stock SET on_hand = on_hand + $2, updated_at = now() WHERE product_id = $1 RETURNING {STOCK_COLUMNS}"
            );
            let rows = db
                .connection
                .query(&sql, &[uuid(product), ParameterValue::Int32(delta)])
                .await
                .map_err(|e| if sql_state(&e) == Some("23514") { below_reserved() } else { failed(e) })?;
            let item = stock_item(
                rows.rows.first().ok_or_else(|| DomainError::not_found(format!("no stock record for product {product}")))?,
            )?;
            db.audit(product, delta, item.on_hand, reason, actor).await?;
            Ok(item)
        })
        .await
    }

    async fn audit(
        &self,
        product: &str,
        delta: i32,
        after: i32,
        reason: &str,
        actor: &str,
    ) -> Result<(), DomainError> {
        self.connection
            .execute(
                "INSERT INTO stock_adjustments (product_id, delta, on_hand_after, reason, actor) VALUES ($1, $2, $3, $4, $5)",
                &[uuid(product), ParameterValue::Int32(delta), ParameterValue::Int32(after), text(reason), text(actor)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    pub async fn adjustments(&self, product: &str) -> Result<Vec<AdjustmentEntry>, DomainError> {
        let rows = self
            .connection
            .query(
                "SELECT delta, on_hand_after, reason, actor, (created_at AT TIME ZONE 'UTC') AS created_at FROM stock_adjustments
                 WHERE product_id = $1 ORDER BY id DESC LIMIT 100",
                &[uuid(product)],
            )
            .await
            .map_err(failed)?;
        rows.rows
            .iter()
            .map(|r| {
                Ok(AdjustmentEntry {
                    delta: decode(&r[0])?,
                    on_hand_after: decode(&r[1])?,
                    reason: decode(&r[2])?,
                    actor: decode(&r[3])?,
                    created_at: timestamp(&r[4])?,
                })
            })
            .collect()
    }

    async fn reservation_lines(&self, order: &str) -> Result<Vec<(Line, String)>, DomainError> {
        let rows = self
            .connection
            .query(
                "SELECT product_id, quantity, status FROM reservations WHERE order_id = $1 ORDER BY product_id",
                &[uuid(order)],
            )
            .await
            .map_err(failed)?;
        rows.rows
            .iter()
            .map(|r| {
                Ok((
                    Line {
                        product_id: uuid_text(&r[0])?,
                        quantity: decode(&r[1])?,
                    },
                    decode::<String>(&r[2])?,
                ))
            })
            .collect()
    }

    /// Reserves every line or none. `lines` are sorted by product id, so
    /// concurrent reservations lock stock rows in one order.
    pub async fn reserve(&self, order: &str, lines: &[Line]) -> Result<Outcome, DomainError> {
        let result: Result<_, Abort> = self.transaction(async |db| {
            // Claim the order first: a concurrent duplicate waits on the key
            // and then finds it taken, so an order is never reserved twice.
            for line in lines {
                let inserted = db
                    .connection
                    .execute(
                        "INSERT INTO reservations (order_id, product_id, quantity) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[uuid(order), uuid(&line.product_id), ParameterValue::Int32(line.quantity)],
                    )
                    .await
                    .map_err(|e| match sql_state(&e) {
                        Some("23503") => Abort::Short(format!("product {} has no stock record", line.product_id)),
                        _ => Abort::Failed(failed(e)),
                    })?;
                if inserted == 0 {
                    return Err(Abort::AlreadyReserved);
                }
            }
            for line in lines {
                let updated = db
                    .connection
                    .execute(
                        "UPDATE stock SET reserved = reserved + $2, updated_at = now()
                         WHERE product_id = $1 AND on_hand - reserved >= $2",
                        &[uuid(&line.product_id), ParameterValue::Int32(line.quantity)],
                    )
                    .await
                    .map_err(failed)?;
                if updated == 0 {
                    return Err(Abort::Short(format!("not enough stock for product {}", line.product_id)));
                }
            }
            let body = reservation(order, "reserved", lines);
            db.record(order, &EventData::InventoryReserved(body.clone())).await?;
            Ok(body)
        })
        .await;
        match result {
            Ok(body) => Ok(Outcome::Done(body)),
            Err(Abort::AlreadyReserved) => {
                let existing = self.reservation_lines(order).await?;
                let status = existing.first().map(|(_, s)| s.clone()).unwrap_or_default();
                let lines: Vec<Line> = existing.into_iter().map(|(l, _)| l).collect();
                Ok(Outcome::AlreadyDone(reservation(order, &status, &lines)))
            }
            Err(Abort::Short(reason)) => {
                let rejected = EventData::InventoryRejected(InventoryRejected {
                    order_id: order.to_string(),
                    reason: reason.clone(),
                });
                self.transaction(async |db| db.record(order, &rejected).await)
                    .await?;
                Ok(Outcome::Rejected(reason))
            }
            Err(Abort::Failed(problem)) => Err(problem),
        }
    }

    /// Takes `step` for an order's reservation, once, in one transaction:
    /// moves its lines, changes the stock as the step says (auditing what
    /// changes on hand) and records the step's event. What a step does when
    /// nothing was where it starts is `ReservationStep::when_nothing_moved`.
    pub async fn take_step(
        &self,
        order: &str,
        step: ReservationStep,
    ) -> Result<Outcome, DomainError> {
        let (from, to) = (step.from().as_str(), step.to().as_str());
        self.transaction(async |db| {
            let lines = db.move_reservation(order, from, to).await?;
            if lines.is_empty() {
                let existing = db.reservation_lines(order).await?;
                let current = existing
                    .first()
                    .and_then(|(_, s)| ReservationStatus::parse(s));
                let lines: Vec<Line> = existing.into_iter().map(|(l, _)| l).collect();
                return Ok(match step.when_nothing_moved(order, current)? {
                    NothingMoved::AlreadyDone => {
                        Outcome::AlreadyDone(reservation(order, to, &lines))
                    }
                    NothingMoved::Refused(reason) => Outcome::Rejected(reason),
                });
            }
            let (on_hand, reserved) = step.stock_change();
            let why = match step {
                ReservationStep::Return => format!("order {order} refunded"),
                _ => format!("order {order}"),
            };
            for line in &lines {
                db.connection
                    .execute(
                        "UPDATE stock SET on_hand = on_hand + $2, reserved = reserved + $3, \
                           updated_at = now() WHERE product_id = $1",
                        &[
                            uuid(&line.product_id),
                            ParameterValue::Int32(on_hand * line.quantity),
                            ParameterValue::Int32(reserved * line.quantity),
                        ],
                    )
                    .await
                    .map_err(failed)?;
                if on_hand != 0 {
                    let after = db
                        .stock(&line.product_id)
                        .await?
                        .map(|s| s.on_hand)
                        .unwrap_or(0);
                    db.audit(
                        &line.product_id,
                        on_hand * line.quantity,
                        after,
                        &why,
                        "orders",
                    )
                    .await?;
                }
            }
            let body = reservation(order, to, &lines);
            let event = match step {
                ReservationStep::Commit => EventData::InventoryCommitted,
                ReservationStep::Release | ReservationStep::Return => EventData::InventoryReleased,
            };
            db.record(order, &event(body.clone())).await?;
            Ok(Outcome::Done(body))
        })
        .await
    }
}

impl Db {
    /// Moves an order's reservation lines from status `from` to `to` and
    /// returns them sorted by product id, the order in which stock rows are
    /// then locked; empty when no line was in `from`.
    async fn move_reservation(
        &self,
        order: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Line>, DomainError> {
        let rows = self
            .connection
            .query(
                "UPDATE reservations SET status = $3, updated_at = now()
                 WHERE order_id = $1 AND status = $2 RETURNING product_id, quantity",
                &[uuid(order), text(from), text(to)],
            )
            .await
            .map_err(failed)?;
        let mut lines = rows
            .rows
            .iter()
            .map(|r| {
                Ok(Line {
                    product_id: uuid_text(&r[0])?,
                    quantity: decode(&r[1])?,
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        Ok(lines)
    }
}

/// Why a reservation transaction was rolled back.
enum Abort {
    /// The order already has a reservation (this is a retry).
    AlreadyReserved,
    /// A line cannot be served; nothing was reserved.
    Short(String),
    Failed(DomainError),
}

impl From<DomainError> for Abort {
    fn from(problem: DomainError) -> Self {
        Abort::Failed(problem)
    }
}

fn below_reserved() -> DomainError {
    DomainError::conflict("on_hand cannot go below zero or below the units already reserved")
}
