//! Imports Spin key-value, which Mart's host does not provide (yet): loading
//! it must fail at start with the interface's name.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(_request: Request) -> Response {
    let opened = Store::open_default().is_ok();
    Response::new(200, format!("opened: {opened}"))
}
