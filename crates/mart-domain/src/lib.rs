//! Mart's domain logic, free of any host or transport: components parse a
//! request, call into here, write, and answer. Everything here is tested
//! natively (`cargo test -p mart-domain`).

pub mod catalog;
pub mod json;
pub mod paging;
pub mod problem;

pub use problem::{FieldError, Problem};
