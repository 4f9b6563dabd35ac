//! Orders: `POST /orders`, `GET /orders`, `GET /orders/{id}`,
//! `POST /orders/{id}/cancel`, admin `PUT /orders/{id}/status`, and the
//! dashboard's `GET /orders/summary` and `GET /orders/activity`; as a
//! Kafka handler (`events`), the order side of the checkout saga; and, as a
//! timer (`Expiry`, Mart's `mart:timer`), the deadline of unpaid orders.
//!
//! A customer sees only their own orders (another's answers 404); admins see
//! all and may filter by user.

mod db;
mod events;
mod services;

use mart_domain::auth::Claims;
use mart_domain::orders::{CancelReason, LineSource, PlaceOrder, Status};
use mart_domain::{paging, parse_uuid, FieldError, Problem};
use mart_guest::auth::authenticate;
use mart_guest::config::variable;
use mart_guest::{
    json_body, json_response, method_not_allowed, segments, Method, Query, Request, Response,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, NewOrder, Order, Placed};

const MAX_BODY_BYTES: usize = 64 * 1024;
/// Expiry batches one timer tick runs at most (the next tick goes on).
const EXPIRY_BATCHES_PER_TICK: usize = 50;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let caller = authenticate(request).await?;
    let segments = segments(request, "/orders");
    match (request.method(), segments.as_slice()) {
        (Method::Post, []) => place(request, &caller).await,
        (Method::Get, []) => list(request, &caller).await,
        (Method::Get, ["summary"]) => summary(request, &caller).await,
        (Method::Get, ["activity"]) => activity(request, &caller).await,
        (Method::Get, [id]) => show(&caller, id).await,
        (Method::Post, [id, "cancel"]) => cancel(&caller, id).await,
        (Method::Put, [id, "status"]) => set_status(request, &caller, id).await,
        (_, []) => Err(method_not_allowed(request, &["GET", "POST"])),
        (_, [_]) => Err(method_not_allowed(request, &["GET"])),
        (_, [_, "cancel"]) => Err(method_not_allowed(request, &["POST"])),
        (_, [_, "status"]) => Err(method_not_allowed(request, &["PUT"])),
        _ => Err(Problem::not_found(format!(
            "no order resource at {}",
            request.path()
        ))),
    }
}

/// Orders left `pending` or `reserved` past `order_deadline_secs` are
/// cancelled ("payment timed out") and their stock released (through
/// `order.cancelled`). Mart's timer trigger ticks this (`orders-expiry` in
/// spin.toml, every `order_sweep_secs`); every host ticks, and cancelling
/// is idempotent (the status machine refuses a second cancellation).
struct Expiry;

impl mart_guest::timer::Timer for Expiry {
    async fn tick(_scheduled_ms: i64) -> Result<(), String> {
        let deadline = variable("order_deadline_secs")
            .await
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(900);
        // Batches until the backlog is gone (bounded per tick), so the sweep
        // keeps up with a burst of abandoned orders.
        let sweep = async |db: &Db| {
            let mut expired = 0;
            for _ in 0..EXPIRY_BATCHES_PER_TICK {
                let batch = db.expire_stale(deadline).await?;
                expired += batch;
                if batch < db::EXPIRY_BATCH {
                    break;
                }
            }
            Ok(expired)
        };
        let swept = match Db::connect().await {
            Ok(db) => sweep(&db).await,
            Err(error) => Err(error),
        };
        match swept {
            Ok(0) => Ok(()),
            Ok(n) => {
                eprintln!("orders: {n} order(s) passed their deadline and were cancelled");
                Ok(())
            }
            Err(error) => Err(format!("expiring stale orders: {error}")),
        }
    }
}

mart_guest::timer::export_timer_handler!(Expiry);

fn caller_id(caller: &Claims) -> Result<String, Problem> {
    parse_uuid(&caller.sub)
        .ok_or_else(|| Problem::new(403, "Forbidden", "this token has no user id"))
}

/// Idempotency keys: printable ASCII, at most 255 characters (as Stripe's).
fn idempotency_key(request: &Request) -> Result<Option<String>, Problem> {
    let Some(key) = request.header("idempotency-key") else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
        ));
    }
    Ok(Some(key.to_string()))
}

async fn place(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    let user = caller_id(caller)?;
    let key = idempotency_key(request)?;
    let input: PlaceOrder = json_body(request, MAX_BODY_BYTES)?;
    let providers = variable("payment_providers").await?;
    let enabled = mart_domain::orders::enabled_providers(
        &providers,
        mart_guest::config::fake_payments_allowed().await?,
    )?;
    let source = input.validate(&enabled)?;
    // The request as understood (not its bytes): key order and spacing do
    // not make a different request.
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&input).expect("serialisable"),
    ));
    // A repeated key answers from what it created, without reading the
    // cart again (it is closed once the order is placed).
    if let Some(k) = key.as_deref() {
        if let Some(existing) = Db::connect().await?.by_key(&user, k).await? {
            return replay(existing, &request_hash);
        }
    }
    let currency = variable("shop_currency").await?;
    let authorization = request.header("authorization");
    let (items, cart_id) = match &source {
        LineSource::Items(items) => (items.clone(), None),
        LineSource::Cart(cart) => (
            services::cart_items(cart, authorization).await?,
            Some(cart.as_str()),
        ),
    };
    let lines = services::priced_lines(&items, &currency).await?;
    // Connected only now: no database connection is held across the calls
    // to carts and the catalog above, so a slow service cannot pin the
    // pool that the saga's handlers need too.
    let placed = Db::connect()
        .await?
        .place(&NewOrder {
            user_id: &user,
            currency: &currency,
            lines: &lines,
            address: &input.shipping_address,
            payment: &input.payment,
            cart_id,
            idempotency_key: key.as_deref(),
            request_hash: &request_hash,
        })
        .await?;
    match placed {
        Placed::Created(order) => {
            let mut response = json_response(201, &order);
            response.set_header("location", format!("/orders/{}", order.id));
            Ok(response)
        }
        Placed::Existing(order) => replay(order, &request_hash),
    }
}

/// The answer to a repeated Idempotency-Key: the same order for the same
/// request, 422 for a different one.
fn replay(order: Order, request_hash: &str) -> Result<Response, Problem> {
    if order.request_hash.as_deref() != Some(request_hash) {
        return Err(Problem::new(
            422,
            "Unprocessable Content",
            format!(
                "Idempotency-Key was already used for order {} with a different request",
                order.id
            ),
        ));
    }
    let mut response = json_response(200, &order);
    response.set_header("location", format!("/orders/{}", order.id));
    Ok(response)
}

async fn list(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    let query = Query::parse(request.query(), &["limit", "cursor", "status", "user_id"])?;
    let mut errors = Vec::new();
    let limit = paging::limit(query.get("limit"))
        .map_err(|e| errors.push(e))
        .unwrap_or(0);
    let after = match query.get("cursor") {
        Some(c) => paging::decode_keyset(c, paging::SortKey::Time)
            .map_err(|e| errors.push(e))
            .ok(),
        None => None,
    };
    let status = match query.get("status") {
        Some(s) => Status::parse(s)
            .ok_or_else(|| errors.push(FieldError::new("status", "is not an order status")))
            .ok(),
        None => None,
    };
    let user = match (query.get("user_id"), caller.is_admin()) {
        (None, true) => None,
        (None, false) => Some(caller_id(caller)?),
        (Some(u), true) => parse_uuid(u)
            .ok_or_else(|| errors.push(FieldError::new("user_id", "must be a user id (a UUID)")))
            .ok(),
        (Some(_), false) => {
            return Err(Problem::new(
                403,
                "Forbidden",
                "only admins may filter orders by user",
            ))
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let db = Db::connect().await?;
    let orders = db
        .list(user.as_deref(), status, after.as_ref(), limit + 1)
        .await?;
    let more = orders.len() > limit as usize;
    let page: Vec<Order> = orders.into_iter().take(limit as usize).collect();
    let next = more
        .then(|| page.last())
        .flatten()
        .map(|o| paging::encode_cursor(&(o.created_at.clone(), o.id.clone())));
    Ok(json_response(
        200,
        &serde_json::json!({ "items": page, "next_cursor": next }),
    ))
}

/// The orders a caller's dashboard covers: their own, or all for an admin.
fn visible_user(caller: &Claims) -> Result<Option<String>, Problem> {
    if caller.is_admin() {
        Ok(None)
    } else {
        caller_id(caller).map(Some)
    }
}

/// `GET /orders/summary`: how many of the caller's orders are in each
/// status (every status present, zeros included), and the total.
async fn summary(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    Query::parse(request.query(), &[])?;
    let user = visible_user(caller)?;
    let counted = Db::connect()
        .await?
        .counts_by_status(user.as_deref())
        .await?;
    let mut counts = serde_json::Map::new();
    for status in Status::ALL {
        let n = counted
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        counts.insert(status.as_str().into(), n.into());
    }
    let total: i64 = counted.iter().map(|(_, n)| n).sum();
    Ok(json_response(
        200,
        &serde_json::json!({ "counts": counts, "total": total }),
    ))
}

/// `GET /orders/activity`: the latest status changes of the caller's
/// orders, newest first: what the dashboard shows as recent events.
async fn activity(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    let query = Query::parse(request.query(), &["limit"])?;
    let limit = paging::limit(query.get("limit")).map_err(|e| Problem::invalid(vec![e]))?;
    let user = visible_user(caller)?;
    let items = Db::connect()
        .await?
        .recent_activity(user.as_deref(), limit)
        .await?;
    Ok(json_response(200, &serde_json::json!({ "items": items })))
}

/// The order if the caller may see it; 404 otherwise (ids cannot be probed).
async fn visible_order(db: &Db, caller: &Claims, id: &str) -> Result<Order, Problem> {
    let not_found = || Problem::not_found(format!("no order has id {id}"));
    let id = parse_uuid(id).ok_or_else(not_found)?;
    let order = db.order(&id).await?.ok_or_else(not_found)?;
    if order.user_id == caller.sub || caller.is_admin() {
        Ok(order)
    } else {
        Err(not_found())
    }
}

async fn show(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    Ok(json_response(200, &visible_order(&db, caller, id).await?))
}

/// Before payment the order is cancelled (stock released); once paid and
/// not yet shipped it is refunded (charge refunded, stock returned).
async fn cancel(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    let order = visible_order(&db, caller, id).await?;
    let (next, reason) = match order.status()? {
        Status::Pending | Status::Reserved => {
            (Status::Cancelled, CancelReason::CancelledByUser.as_str())
        }
        Status::Paid => (Status::Refunded, CancelReason::CancelledByUser.as_str()),
        Status::Cancelled | Status::Refunded => return Ok(json_response(200, &order)),
        Status::Shipped | Status::Delivered => {
            return Err(Problem::conflict(format!(
                "order {} was already {}; it can no longer be cancelled",
                order.id, order.status
            )))
        }
    };
    db.change_status(&order.id, next, Some(reason)).await?;
    show(caller, &order.id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: String,
}

async fn set_status(request: &Request, caller: &Claims, id: &str) -> Result<Response, Problem> {
    caller.require_admin()?;
    let input: SetStatus = json_body(request, 1024)?;
    let next = match Status::parse(&input.status) {
        Some(s @ (Status::Shipped | Status::Delivered)) => s,
        _ => {
            return Err(Problem::invalid(vec![FieldError::new(
                "status",
                "must be shipped or delivered (other moves follow payments and stock)",
            )]))
        }
    };
    let db = Db::connect().await?;
    let order = visible_order(&db, caller, id).await?;
    db.change_status(&order.id, next, None).await?;
    show(caller, &order.id).await
}
