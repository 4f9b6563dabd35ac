//! Notifications: `GET /notifications` (the caller's own, newest first);
//! and, as a Kafka handler (`events`), a message for each event a customer
//! should hear about.

mod events;

use mart_domain::{paging, Problem};
use mart_guest::auth::authenticate;
use mart_guest::db::{self as pg, decode, timestamp, uuid, uuid_text, ParameterValue};
use mart_guest::{json_response, method_not_allowed, segments, Method, Query, Request, Response};
use serde::Serialize;

#[derive(Serialize)]
struct Notification {
    id: String,
    kind: String,
    channel: String,
    subject: String,
    body: String,
    status: String,
    created_at: String,
}

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let caller = authenticate(request).await?;
    match (
        request.method(),
        segments(request, "/notifications").as_slice(),
    ) {
        (Method::Get, []) => list(request, &caller.sub).await,
        (_, []) => Err(method_not_allowed(request, &["GET"])),
        _ => Err(Problem::not_found(format!(
            "no notification resource at {}",
            request.path()
        ))),
    }
}

async fn list(request: &Request, user: &str) -> Result<Response, Problem> {
    let query = Query::parse(request.query(), &["limit"])?;
    let limit = paging::limit(query.get("limit")).map_err(|e| Problem::invalid(vec![e]))?;
    let Some(user) = mart_domain::parse_uuid(user) else {
        return Ok(json_response(200, &serde_json::json!({ "items": [] })));
    };
    let db = pg::Database::connect("notifications").await?;
    let rows = db
        .connection
        .query(
            "SELECT id, kind, channel, subject, body, status, (created_at AT TIME ZONE 'UTC') AS created_at FROM notifications \
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            &[uuid(&user), ParameterValue::Int64(i64::from(limit))],
        )
        .await
        .map_err(|e| db.failed(e))?;
    let items = rows
        .rows
        .iter()
        .map(|r| {
            Ok(Notification {
                id: uuid_text(&r[0])?,
                kind: decode(&r[1])?,
                channel: decode(&r[2])?,
                subject: decode(&r[3])?,
                body: decode(&r[4])?,
                status: decode(&r[5])?,
                created_at: timestamp(&r[6])?,
            })
        })
        .collect::<Result<Vec<_>, mart_domain::DomainError>>()?;
    Ok(json_response(200, &serde_json::json!({ "items": items })))
}
