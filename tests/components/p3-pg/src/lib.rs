//! spin:postgres@4.2.0 and spin:variables@3.0.0 as a spin-sdk 6 component
//! (Spin 4.0's SDK) calls them: every call async, rows streamed. Each route
//! does one thing the tests check from outside; errors come back as their
//! debug text, so a test can tell a structured database error from text.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;
use spin_sdk::pg::{Connection, DbValue, ParameterValue};
use spin_sdk::variables;

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let route = request.uri().path().rsplit('/').next().unwrap_or_default();
    Ok(match route {
        "var" => match variables::get(param("name")).await {
            Ok(value) => answer(200, value),
            Err(e) => answer(404, format!("{e:?}")),
        },
        "open" => match Connection::open(param("url")).await {
            Ok(_) => answer(200, "opened".into()),
            Err(e) => answer(502, format!("{e:?}")),
        },
        "query" => match query_rows(&param("url"), &param("sql"), &param("arg")).await {
            Ok(json) => answer(200, json.to_string()),
            Err(e) => answer(502, e),
        },
        "execute" => match execute(&param("url"), &param("sql"), &param("arg")).await {
            Ok(changed) => answer(200, changed.to_string()),
            Err(e) => answer(502, e),
        },
        _ => answer(404, format!("no route {route}")),
    })
}

/// `arg`, when given, is the statement's one text parameter (`$1`).
fn params(arg: &str) -> Vec<ParameterValue> {
    if arg.is_empty() {
        Vec::new()
    } else {
        vec![ParameterValue::Str(arg.to_string())]
    }
}

/// The query's column names and rows (as debug text per value), or the
/// debug text of the error: the call's own, or the stream's end.
async fn query_rows(url: &str, sql: &str, arg: &str) -> Result<serde_json::Value, String> {
    let connection = Connection::open(url).await.map_err(|e| format!("{e:?}"))?;
    let result = connection
        .query(sql, params(arg))
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    let columns: Vec<String> = result.columns().iter().map(|c| c.name.clone()).collect();
    let rows = result.collect().await.map_err(|e| format!("end: {e:?}"))?;
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| (0..columns.len()).map(|i| value_text(&row[i])).collect())
        .collect();
    Ok(serde_json::json!({ "columns": columns, "rows": rows }))
}

fn value_text(value: &DbValue) -> String {
    match value {
        DbValue::Str(s) => s.clone(),
        DbValue::Int32(n) => n.to_string(),
        DbValue::Int64(n) => n.to_string(),
        DbValue::DbNull => "null".into(),
        other => format!("{other:?}"),
    }
}

async fn execute(url: &str, sql: &str, arg: &str) -> Result<u64, String> {
    let connection = Connection::open(url).await.map_err(|e| format!("{e:?}"))?;
    connection
        .execute(sql, params(arg))
        .await
        .map_err(|e| format!("{e:?}"))
}

fn answer(status: u16, body: String) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body)
        .expect("a status and a string make a response")
}
