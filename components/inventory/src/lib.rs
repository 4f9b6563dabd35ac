//! Inventory: `/inventory/{product_id}`, `/inventory?product_ids=…`, admin
//! stock changes with an audit trail, and per-order reservations.
//!
//! Reservations are all-or-nothing across an order's lines; releasing or
//! committing one is idempotent. The checkout saga drives them from Kafka
//! (`events`, the same Wasm exporting mart:kafka/handler); here they are
//! also admin HTTP endpoints.

mod db;
mod events;

use mart_domain::inventory::{self, Adjustment, ReservationRequest, SetStock};
use mart_domain::{parse_uuid, FieldError, Problem};
use mart_guest::auth::require_admin;
use mart_guest::{
    json_body, json_response, method_not_allowed, segments, Method, Query, Request, Response,
};

use crate::db::{Db, Outcome};
use mart_domain::inventory::ReservationStep;

const MAX_BODY_BYTES: usize = 64 * 1024;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let segments = segments(request, "/inventory");
    match (request.method(), segments.as_slice()) {
        (Method::Get, []) => list(request).await,
        (Method::Post, ["reservations"]) => reserve(request).await,
        (Method::Post, ["reservations", order, "release"]) => finish(request, order, false).await,
        (Method::Post, ["reservations", order, "commit"]) => finish(request, order, true).await,
        // Before the product arms: `reservations` is not a product id.
        (_, ["reservations"] | ["reservations", _, "release" | "commit"]) => {
            Err(method_not_allowed(request, &["POST"]))
        }
        (Method::Get, [product]) => get(product).await,
        (Method::Put, [product]) => set(request, product).await,
        (Method::Post, [product, "adjustments"]) => adjust(request, product).await,
        (Method::Get, [product, "adjustments"]) => history(request, product).await,
        (_, []) => Err(method_not_allowed(request, &["GET"])),
        (_, [_]) => Err(method_not_allowed(request, &["GET", "PUT"])),
        (_, [_, "adjustments"]) => Err(method_not_allowed(request, &["GET", "POST"])),
        _ => Err(Problem::not_found(format!(
            "no inventory resource at /inventory/{}",
            segments.join("/")
        ))),
    }
}

fn product_id(text: &str) -> Result<String, Problem> {
    parse_uuid(text)
        .ok_or_else(|| Problem::not_found(format!("no stock record for product {text}")))
}

async fn get(product: &str) -> Result<Response, Problem> {
    let id = product_id(product)?;
    match Db::connect().await?.stock(&id).await? {
        Some(item) => Ok(json_response(200, &item)),
        None => Err(Problem::not_found(format!(
            "no stock record for product {id}"
        ))),
    }
}

async fn list(request: &Request) -> Result<Response, Problem> {
    let query = Query::parse(request.query(), &["product_ids"])?;
    let raw = query.get("product_ids").ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "product_ids",
            "is required: comma-separated product ids",
        )])
    })?;
    let mut ids = Vec::new();
    for text in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        ids.push(parse_uuid(text).ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "product_ids",
                format!("`{text}` is not a product id"),
            )])
        })?);
    }
    if ids.is_empty() || ids.len() > 100 {
        return Err(Problem::invalid(vec![FieldError::new(
            "product_ids",
            "must list 1 to 100 product ids",
        )]));
    }
    let items = Db::connect().await?.stock_many(&ids).await?;
    Ok(json_response(200, &serde_json::json!({ "items": items })))
}

async fn set(request: &Request, product: &str) -> Result<Response, Problem> {
    let admin = require_admin(request).await?;
    let id = product_id(product)?;
    let input: SetStock = json_body(request, MAX_BODY_BYTES)?;
    inventory::validate_set(&input)?;
    let item = Db::connect()
        .await?
        .set_on_hand(&id, input.on_hand, &admin.sub)
        .await?;
    Ok(json_response(200, &item))
}

async fn adjust(request: &Request, product: &str) -> Result<Response, Problem> {
    let admin = require_admin(request).await?;
    let id = product_id(product)?;
    let input: Adjustment = json_body(request, MAX_BODY_BYTES)?;
    let reason = inventory::validate_adjustment(&input)?;
    let item = Db::connect()
        .await?
        .adjust(&id, input.delta, &reason, &admin.sub)
        .await?;
    Ok(json_response(201, &item))
}

async fn history(request: &Request, product: &str) -> Result<Response, Problem> {
    require_admin(request).await?;
    let id = product_id(product)?;
    let entries = Db::connect().await?.adjustments(&id).await?;
    Ok(json_response(200, &serde_json::json!({ "items": entries })))
}

async fn reserve(request: &Request) -> Result<Response, Problem> {
    require_admin(request).await?;
    let input: ReservationRequest = json_body(request, MAX_BODY_BYTES)?;
    let order = parse_uuid(&input.order_id).ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "order_id",
            "must be an order id (UUID)",
        )])
    })?;
    let lines = inventory::normalise_lines(&input.lines, |id| parse_uuid(id).is_some())?;
    match Db::connect().await?.reserve(&order, &lines).await? {
        Outcome::Done(body) => Ok(json_response(201, &body)),
        Outcome::AlreadyDone(body) => Ok(json_response(200, &body)),
        Outcome::Rejected(reason) => Err(Problem::conflict(reason)),
    }
}

async fn finish(request: &Request, order: &str, commit: bool) -> Result<Response, Problem> {
    require_admin(request).await?;
    let order = parse_uuid(order)
        .ok_or_else(|| Problem::not_found(format!("no reservation for order {order}")))?;
    let step = if commit {
        ReservationStep::Commit
    } else {
        ReservationStep::Release
    };
    match Db::connect().await?.take_step(&order, step).await? {
        Outcome::Done(body) | Outcome::AlreadyDone(body) => Ok(json_response(200, &body)),
        Outcome::Rejected(reason) => Err(Problem::conflict(reason)),
    }
}
