//! Calls to the catalog and inventory components through Spin service
//! chaining: in-process on Mart's host, the same URLs on Fermyon Spin.

use mart_domain::Problem;
use mart_guest::{Method, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Product {
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
}

#[derive(Deserialize)]
struct Stock {
    available: i32,
}

async fn get(url: &str) -> Result<Response, Problem> {
    mart_guest::http::send(Method::Get, url, &[], Vec::new())
        .await
        .map_err(|e| {
            eprintln!("carts: {e}");
            Problem::service_unavailable("a service the cart depends on is unavailable")
        })
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, response: &Response) -> Result<T, Problem> {
    serde_json::from_slice(response.body()).map_err(|e| {
        eprintln!("carts: GET {url}: unexpected body: {e}");
        Problem::internal("a service the cart depends on answered unexpectedly")
    })
}

pub async fn product(id: &str) -> Result<Product, Problem> {
    let url = format!("http://catalog.spin.internal/products/{id}");
    let response = get(&url).await?;
    match response.status() {
        200 => parse(&url, &response),
        404 => Err(Problem::not_found(format!("no product has id {id}"))),
        status => {
            eprintln!("carts: GET {url}: status {status}");
            Err(Problem::service_unavailable("the catalog is unavailable"))
        }
    }
}

/// Units available now; a product without a stock record has none.
pub async fn available(id: &str) -> Result<i32, Problem> {
    let url = format!("http://inventory.spin.internal/inventory/{id}");
    let response = get(&url).await?;
    match response.status() {
        200 => parse::<Stock>(&url, &response).map(|s| s.available),
        404 => Ok(0),
        status => {
            eprintln!("carts: GET {url}: status {status}");
            Err(Problem::service_unavailable("inventory is unavailable"))
        }
    }
}
