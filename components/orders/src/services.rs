//! The catalog and carts, through Spin service chaining: prices are taken
//! from the catalog at placement; a cart is read with the caller's own token,
//! so the carts service decides whether the caller may see it.

use mart_domain::orders::{ItemRequest, OrderLine};
use mart_domain::Problem;
use mart_guest::{Method, Response};
use serde::Deserialize;

#[derive(Deserialize)]
struct Product {
    name: String,
    price_minor: i64,
    currency: String,
}

#[derive(Deserialize)]
struct Cart {
    status: String,
    lines: Vec<CartLine>,
}

#[derive(Deserialize)]
struct CartLine {
    product_id: String,
    quantity: i32,
}

async fn get(url: &str, authorization: Option<&str>) -> Result<Response, Problem> {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    mart_guest::http::send(Method::Get, url, &headers, Vec::new())
        .await
        .map_err(|e| {
            // `e` names the method and URL already.
            eprintln!("orders: {e}");
            Problem::service_unavailable("a service orders depend on is unavailable")
        })
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, response: &Response) -> Result<T, Problem> {
    serde_json::from_slice(response.body()).map_err(|e| {
        eprintln!("orders: GET {url}: unexpected body: {e}");
        Problem::internal("a service orders depend on answered unexpectedly")
    })
}

/// The items of a cart the caller may see, or 404/409 problems naming it.
pub async fn cart_items(
    cart_id: &str,
    authorization: Option<&str>,
) -> Result<Vec<ItemRequest>, Problem> {
    let url = format!("http://carts.spin.internal/carts/{cart_id}");
    let response = get(&url, authorization).await?;
    match response.status() {
        200 => {}
        404 => return Err(Problem::not_found(format!("no cart has id {cart_id}"))),
        status => {
            eprintln!("orders: GET {url}: status {status}");
            return Err(Problem::service_unavailable("the carts service failed"));
        }
    }
    let cart: Cart = parse(&url, &response)?;
    if cart.status != "open" {
        return Err(Problem::conflict(format!(
            "cart {cart_id} was already checked out"
        )));
    }
    if cart.lines.is_empty() {
        return Err(Problem::conflict(format!("cart {cart_id} is empty")));
    }
    if cart.lines.len() > mart_domain::orders::MAX_LINES {
        return Err(Problem::invalid(vec![mart_domain::FieldError::new(
            "cart_id",
            format!(
                "the cart holds {} lines; an order holds at most {}",
                cart.lines.len(),
                mart_domain::orders::MAX_LINES
            ),
        )]));
    }
    let mut items: Vec<ItemRequest> = cart
        .lines
        .into_iter()
        .map(|l| ItemRequest {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    items.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    Ok(items)
}

/// The lines with the catalog's current names and prices, in `currency`.
pub async fn priced_lines(
    items: &[ItemRequest],
    currency: &str,
) -> Result<Vec<OrderLine>, Problem> {
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let url = format!("http://catalog.spin.internal/products/{}", item.product_id);
        let response = get(&url, None).await?;
        match response.status() {
            200 => {}
            // As carts answer for an unknown product: what the order names
            // is not there.
            404 => {
                return Err(Problem::not_found(format!(
                    "product {} does not exist",
                    item.product_id
                )))
            }
            status => {
                eprintln!("orders: GET {url}: status {status}");
                return Err(Problem::service_unavailable("the catalog failed"));
            }
        }
        let product: Product = parse(&url, &response)?;
        if product.currency != currency {
            return Err(Problem::internal(format!(
                "product {} is priced in {}, the shop in {currency}",
                item.product_id, product.currency
            )));
        }
        lines.push(OrderLine {
            product_id: item.product_id.clone(),
            name: product.name,
            quantity: item.quantity,
            unit_price_minor: product.price_minor,
        });
    }
    Ok(lines)
}
