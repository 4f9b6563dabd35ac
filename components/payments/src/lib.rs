//! Payments: `GET /payments/{id}`, `GET /payments?order_id=` (the payer or
//! an admin), admin `POST /payments/{id}/refund`; and, as a Kafka handler
//! (`events`), the payment side of the checkout saga.

mod db;
mod events;

use mart_domain::auth::Claims;
use mart_domain::{parse_uuid, FieldError, Problem};
use mart_guest::auth::authenticate;
use mart_guest::{json_response, segments, Query};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use crate::db::{Db, Payment};

#[http_component]
fn handle(request: Request) -> Response {
    mart_guest::respond(route(&request))
}

fn route(request: &Request) -> Result<Response, Problem> {
    let caller = authenticate(request)?;
    let segments = segments(request, "/payments");
    match (request.method(), segments.as_slice()) {
        (Method::Get, []) => by_order(request, &caller),
        (Method::Get, [id]) => show(&caller, id),
        (Method::Post, [id, "refund"]) => refund(&caller, id),
        _ => Err(Problem::not_found(format!(
            "no payment resource at {}",
            request.path()
        ))),
    }
}

/// The payment if the caller paid it (or is an admin); 404 otherwise.
fn visible(caller: &Claims, payment: Option<Payment>, what: &str) -> Result<Payment, Problem> {
    match payment {
        Some(p) if caller.is_admin() || p.user_id.as_deref() == Some(caller.sub.as_str()) => Ok(p),
        _ => Err(Problem::not_found(format!("no payment {what}"))),
    }
}

fn show(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let what = format!("has id {id}");
    let id = parse_uuid(id).ok_or_else(|| Problem::not_found(format!("no payment {what}")))?;
    let payment = Db::connect()?.by_id(&id)?;
    Ok(json_response(200, &visible(caller, payment, &what)?))
}

fn by_order(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    let query = Query::parse(request.query());
    query.only(&["order_id"])?;
    let order = query.get("order_id").and_then(parse_uuid).ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "order_id",
            "is required: an order id (a UUID)",
        )])
    })?;
    let payment = Db::connect()?.by_order(&order)?;
    let items: Vec<Payment> = visible(caller, payment, "").into_iter().collect();
    Ok(json_response(200, &serde_json::json!({ "items": items })))
}

fn refund(caller: &Claims, id: &str) -> Result<Response, Problem> {
    caller.require_admin()?;
    let db = Db::connect()?;
    let not_found = || Problem::not_found(format!("no payment has id {id}"));
    let payment = db
        .by_id(&parse_uuid(id).ok_or_else(not_found)?)?
        .ok_or_else(not_found)?;
    let refunded = db
        .transaction(|db| db.refund_order(&payment.order_id, "refunded by an admin"))?
        .ok_or_else(not_found)?;
    Ok(json_response(200, &refunded))
}
