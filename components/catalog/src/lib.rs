//! The product catalog: `/products` and `/products/{id}`.
//!
//! Thin by design: parse the request, apply `mart_domain::catalog`, run one
//! parameterised statement, answer JSON (errors as problem+json).

mod db;

use mart_domain::{catalog, paging, FieldError, Problem};
use mart_guest::{
    auth, json_body, json_response, method_not_allowed, subpath, Method, Query, Request, Response,
};

/// Largest request body the catalog reads.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let id = subpath(request, "/products")
        .unwrap_or_default()
        .trim_matches('/');
    match (request.method(), id) {
        (Method::Get, "") => list(request).await,
        (Method::Post, "") => create(request).await,
        (_, "") => Err(method_not_allowed(request, &["GET", "POST"])),
        (Method::Get, id) => get(id).await,
        (Method::Put, id) => replace(request, id).await,
        (Method::Delete, id) => delete(request, id).await,
        _ => Err(method_not_allowed(request, &["GET", "PUT", "DELETE"])),
    }
}

async fn list(request: &Request) -> Result<Response, Problem> {
    let query = Query::parse(
        request.query(),
        &["limit", "cursor", "offset", "q", "category"],
    )?;
    let mut errors = Vec::new();
    let limit = paging::limit(query.get("limit"))
        .map_err(|e| errors.push(e))
        .unwrap_or(0);
    let offset = paging::offset(query.get("offset"))
        .map_err(|e| errors.push(e))
        .unwrap_or(0);
    let after = match query.get("cursor") {
        Some(cursor) => paging::decode_keyset(cursor, paging::SortKey::Text)
            .map_err(|e| errors.push(e))
            .ok(),
        None => None,
    };
    if after.is_some() && offset > 0 {
        errors.push(FieldError::new("offset", "cannot be combined with cursor"));
    }
    let category = query.get("category");
    if let Some(category) = category {
        if let Err(message) = catalog::check_category(category) {
            errors.push(FieldError::new("category", message));
        }
    }
    let text = query.get("q").map(str::trim).filter(|q| !q.is_empty());
    if text.is_some_and(|q| q.chars().count() > 100) {
        errors.push(FieldError::new("q", "must be at most 100 characters"));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let filter = db::ListFilter {
        text,
        category,
        after,
        offset,
        limit,
    };
    let mut items = db::list(&filter).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items
            .last()
            .map(|p| paging::encode_cursor(&(p.name.clone(), p.id.clone())))
    } else {
        None
    };
    Ok(json_response(
        200,
        &serde_json::json!({ "items": items, "next_cursor": next_cursor }),
    ))
}

async fn get(id: &str) -> Result<Response, Problem> {
    let id = db::parse_id(id)?;
    match db::get(&id).await? {
        Some(product) => Ok(json_response(200, &product)),
        None => Err(not_found(&id)),
    }
}

async fn create(request: &Request) -> Result<Response, Problem> {
    authorize_write(request).await?;
    let product = valid_body(request).await?;
    let created = db::insert(&product).await?;
    let mut response = json_response(201, &created);
    response.set_header("location", format!("/products/{}", created.id));
    Ok(response)
}

async fn replace(request: &Request, id: &str) -> Result<Response, Problem> {
    authorize_write(request).await?;
    let id = db::parse_id(id)?;
    let product = valid_body(request).await?;
    match db::update(&id, &product).await? {
        Some(updated) => Ok(json_response(200, &updated)),
        None => Err(not_found(&id)),
    }
}

async fn delete(request: &Request, id: &str) -> Result<Response, Problem> {
    authorize_write(request).await?;
    let id = db::parse_id(id)?;
    if db::delete(&id).await? {
        Ok(Response::empty(204))
    } else {
        Err(not_found(&id))
    }
}

/// Catalog writes are for admins only; reads are public.
async fn authorize_write(request: &Request) -> Result<(), Problem> {
    auth::require_admin(request).await.map(|_| ())
}

async fn valid_body(request: &Request) -> Result<catalog::ValidProduct, Problem> {
    let input: catalog::ProductInput = json_body(request, MAX_BODY_BYTES)?;
    Ok(catalog::validate(input, &db::shop_currency().await?)?)
}

fn not_found(id: &str) -> Problem {
    Problem::not_found(format!("no product has id {id}"))
}
