//! Mart's domain logic, free of any host or transport: components parse a
//! request, call into here, write, and answer. Everything here is tested
//! natively (`cargo test -p mart-domain`).

pub mod auth;
pub mod catalog;
pub mod json;
pub mod outbox;
pub mod paging;
pub mod password;
pub mod problem;
pub mod users;

pub use problem::{FieldError, Problem};
