//! Carts: `/carts`, `/carts/{id}`, `/carts/{id}/items[/{product_id}]`.
//!
//! Product existence and price come from the catalog and available stock
//! from inventory, both through Spin service chaining
//! (`http://<component>.spin.internal`): each service owns its data.
//! Another user's cart answers 404, so cart ids cannot be probed.

mod db;
mod events;
mod services;

use mart_domain::auth::Claims;
use mart_domain::carts::{self, AddItem, SetQuantity};
use mart_domain::{parse_uuid, FieldError, Problem};
use mart_guest::auth::authenticate;
use mart_guest::config::variable;
use mart_guest::{
    json_body, json_response, method_not_allowed, segments, Method, Request, Response,
};

use crate::db::{Cart, Db};

const MAX_BODY_BYTES: usize = 16 * 1024;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let caller = authenticate(request).await?;
    let segments = segments(request, "/carts");
    match (request.method(), segments.as_slice()) {
        (Method::Post, []) => create(&caller).await,
        (Method::Get, [cart]) => show(&caller, cart).await,
        (Method::Delete, [cart]) => clear(&caller, cart).await,
        (Method::Post, [cart, "items"]) => add_item(request, &caller, cart).await,
        (Method::Put, [cart, "items", product]) => {
            set_quantity(request, &caller, cart, product).await
        }
        (Method::Delete, [cart, "items", product]) => remove_item(&caller, cart, product).await,
        (_, []) => Err(method_not_allowed(request, &["POST"])),
        (_, [_]) => Err(method_not_allowed(request, &["GET", "DELETE"])),
        (_, [_, "items"]) => Err(method_not_allowed(request, &["POST"])),
        (_, [_, "items", _]) => Err(method_not_allowed(request, &["PUT", "DELETE"])),
        _ => Err(Problem::not_found(format!(
            "no cart resource at /carts/{}",
            segments.join("/")
        ))),
    }
}

async fn create(caller: &Claims) -> Result<Response, Problem> {
    let owner = parse_uuid(&caller.sub)
        .ok_or_else(|| Problem::new(403, "Forbidden", "this token has no user id"))?;
    let db = Db::connect().await?;
    let cart = db.create(&owner, &variable("shop_currency").await?).await?;
    let mut response = json_response(201, &cart.view());
    response.set_header("location", format!("/carts/{}", cart.id));
    Ok(response)
}

/// The cart if the caller owns it (or is an admin); 404 otherwise.
async fn visible_cart(db: &Db, caller: &Claims, id: &str) -> Result<Cart, Problem> {
    let not_found = || Problem::not_found(format!("no cart has id {id}"));
    let id = parse_uuid(id).ok_or_else(not_found)?;
    let cart = db.cart(&id).await?.ok_or_else(not_found)?;
    if cart.owner_id == caller.sub || caller.is_admin() {
        Ok(cart)
    } else {
        Err(not_found())
    }
}

/// Like `visible_cart`, and the cart must still be open.
async fn open_cart(db: &Db, caller: &Claims, id: &str) -> Result<Cart, Problem> {
    let cart = visible_cart(db, caller, id).await?;
    if cart.status != "open" {
        return Err(Problem::conflict(format!(
            "cart {} was checked out and is closed",
            cart.id
        )));
    }
    Ok(cart)
}

async fn show(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    Ok(json_response(
        200,
        &visible_cart(&db, caller, id).await?.view(),
    ))
}

async fn clear(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    let cart = open_cart(&db, caller, id).await?;
    db.clear(&cart.id).await?;
    Ok(json_response(
        200,
        &db.cart(&cart.id)
            .await?
            .ok_or_else(|| Problem::internal("cart vanished"))?
            .view(),
    ))
}

fn product_field(id: &str) -> Result<String, Problem> {
    parse_uuid(id).ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "product_id",
            "must be a product id (UUID)",
        )])
    })
}

async fn add_item(request: &Request, caller: &Claims, id: &str) -> Result<Response, Problem> {
    let input: AddItem = json_body(request, MAX_BODY_BYTES)?;
    carts::check_quantity(input.quantity)?;
    let product_id = product_field(&input.product_id)?;
    let db = Db::connect().await?;
    let cart = open_cart(&db, caller, id).await?;
    let existing = cart
        .lines
        .iter()
        .find(|l| l.product_id == product_id)
        .map_or(0, |l| l.quantity);
    let quantity = carts::added_quantity(existing, input.quantity)?;
    put_line(&db, &cart, &product_id, quantity).await
}

async fn set_quantity(
    request: &Request,
    caller: &Claims,
    id: &str,
    product: &str,
) -> Result<Response, Problem> {
    let input: SetQuantity = json_body(request, MAX_BODY_BYTES)?;
    carts::check_quantity(input.quantity)?;
    let db = Db::connect().await?;
    let cart = open_cart(&db, caller, id).await?;
    let product_id = parse_uuid(product).filter(|p| cart.lines.iter().any(|l| &l.product_id == p));
    let product_id = product_id
        .ok_or_else(|| Problem::not_found(format!("the cart has no line for product {product}")))?;
    put_line(&db, &cart, &product_id, input.quantity).await
}

/// Prices the line from the catalog, checks stock, stores it, shows the cart.
async fn put_line(
    db: &Db,
    cart: &Cart,
    product_id: &str,
    quantity: i32,
) -> Result<Response, Problem> {
    let product = services::product(product_id).await?;
    if product.currency != cart.currency {
        return Err(Problem::conflict(format!(
            "product {product_id} is priced in {}, the cart in {}",
            product.currency, cart.currency
        )));
    }
    let available = services::available(product_id).await?;
    if available < quantity {
        return Err(Problem::conflict(format!(
            "only {available} of product {product_id} in stock; asked for {quantity}"
        )));
    }
    db.upsert_line(
        &cart.id,
        product_id,
        &product.name,
        quantity,
        product.price_minor,
    )
    .await?;
    let cart = db
        .cart(&cart.id)
        .await?
        .ok_or_else(|| Problem::internal("cart vanished"))?;
    Ok(json_response(200, &cart.view()))
}

async fn remove_item(caller: &Claims, id: &str, product: &str) -> Result<Response, Problem> {
    let db = Db::connect().await?;
    let cart = open_cart(&db, caller, id).await?;
    let missing = || Problem::not_found(format!("the cart has no line for product {product}"));
    let product_id = parse_uuid(product).ok_or_else(missing)?;
    if !db.remove_line(&cart.id, &product_id).await? {
        return Err(missing());
    }
    let cart = db
        .cart(&cart.id)
        .await?
        .ok_or_else(|| Problem::internal("cart vanished"))?;
    Ok(json_response(200, &cart.view()))
}
