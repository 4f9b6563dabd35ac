//! Imports Spin's LLM interface (`fermyon:spin/llm@2.0.0`), which Mart's
//! host does not provide: loading it must fail at start with the
//! interface's name.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::llm;

#[http_component]
fn handle(_request: Request) -> Response {
    let answered = llm::infer(llm::InferencingModel::Llama2Chat, "hello").is_ok();
    Response::new(200, format!("answered: {answered}"))
}
