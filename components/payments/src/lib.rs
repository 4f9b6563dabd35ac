//! Payments: `GET /payments/{id}`, `GET /payments?order_id=` (the payer or
//! an admin), admin `POST /payments/{id}/refund`, Stripe's webhook
//! `POST /payments/webhooks/stripe` and PayFast's ITN
//! `POST /payments/webhooks/payfast` (public: signatures only); and, as a
//! Kafka handler (`events`), the payment side of the checkout saga.

mod db;
mod events;
mod providers;

use mart_domain::auth::Claims;
use mart_domain::{parse_uuid, FieldError, Problem};
use mart_guest::auth::authenticate;
use mart_guest::{json_response, method_not_allowed, segments, Method, Query, Request, Response};

use crate::db::{Db, Payment};

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    // Webhooks carry no token: the provider's signature authenticates them.
    match (request.path(), request.method()) {
        ("/payments/webhooks/stripe", Method::Post) => return stripe_webhook(request).await,
        ("/payments/webhooks/payfast", Method::Post) => return payfast_itn(request).await,
        ("/payments/webhooks/stripe" | "/payments/webhooks/payfast", _) => {
            return Err(method_not_allowed(request, &["POST"]))
        }
        _ => {}
    }
    let caller = authenticate(request).await?;
    let segments = segments(request, "/payments");
    match (request.method(), segments.as_slice()) {
        (Method::Get, []) => by_order(request, &caller).await,
        (Method::Get, [id]) => show(&caller, id).await,
        (Method::Post, [id, "refund"]) => refund(&caller, id).await,
        (_, [] | [_]) => Err(method_not_allowed(request, &["GET"])),
        (_, [_, "refund"]) => Err(method_not_allowed(request, &["POST"])),
        _ => Err(Problem::not_found(format!(
            "no payment resource at {}",
            request.path()
        ))),
    }
}

/// The payment if the caller paid it (or is an admin); 404 otherwise.
fn visible(caller: &Claims, payment: Option<Payment>, what: &str) -> Result<Payment, Problem> {
    match payment {
        Some(p) if caller.is_admin() || p.user_id.as_deref() == Some(caller.sub.as_str()) => Ok(p),
        _ => Err(Problem::not_found(format!("no payment {what}"))),
    }
}

async fn show(caller: &Claims, id: &str) -> Result<Response, Problem> {
    let what = format!("has id {id}");
    let id = parse_uuid(id).ok_or_else(|| Problem::not_found(format!("no payment {what}")))?;
    let payment = Db::connect().await?.by_id(&id).await?;
    Ok(json_response(200, &visible(caller, payment, &what)?))
}

async fn by_order(request: &Request, caller: &Claims) -> Result<Response, Problem> {
    let query = Query::parse(request.query(), &["order_id"])?;
    let order = query.get("order_id").and_then(parse_uuid).ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "order_id",
            "is required: an order id (a UUID)",
        )])
    })?;
    let payment = Db::connect().await?.by_order(&order).await?;
    let items: Vec<Payment> = visible(caller, payment, "").into_iter().collect();
    Ok(json_response(200, &serde_json::json!({ "items": items })))
}

async fn refund(caller: &Claims, id: &str) -> Result<Response, Problem> {
    caller.require_admin()?;
    let db = Db::connect().await?;
    let not_found = || Problem::not_found(format!("no payment has id {id}"));
    let payment = db
        .by_id(&parse_uuid(id).ok_or_else(not_found)?)
        .await?
        .ok_or_else(not_found)?;
    // Decided (and recorded, with payment.refund_due) first, then made: if
    // the provider cannot be reached now, the answer is 503 and the
    // payments handler keeps trying.
    db.transaction(async |db| {
        db.refund_order(&payment.order_id, "refunded by an admin")
            .await
    })
    .await?
    .ok_or_else(not_found)?;
    db.carry_out_refunds(&payment.order_id).await?;
    let refunded = db
        .by_order(&payment.order_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(200, &refunded))
}

/// Stripe's final word on a payment intent. Verified by `Stripe-Signature`
/// (with `stripe_webhook_secret`), applied once per Stripe event id, and
/// answered 200 for events that need nothing, so Stripe stops resending.
async fn stripe_webhook(request: &Request) -> Result<Response, Problem> {
    // A request without a signature is malformed wherever it is sent.
    let signature = request
        .header("stripe-signature")
        .ok_or_else(|| Problem::bad_request("the Stripe-Signature header is missing"))?;
    let secret = mart_guest::config::optional_variable("stripe_webhook_secret")
        .await
        .ok_or_else(|| Problem::not_found("Stripe webhooks are not enabled here"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    mart_domain::stripe::verify_signature(signature, request.body(), &secret, now)
        .map_err(Problem::bad_request)?;
    let event = mart_domain::stripe::parse_webhook(request.body()).map_err(Problem::bad_request)?;
    let succeeded = match event.kind.as_str() {
        "payment_intent.succeeded" => true,
        "payment_intent.payment_failed" => false,
        _ => return Ok(json_response(200, &serde_json::json!({ "received": true }))),
    };
    let db = Db::connect().await?;
    // Stripe resends an event until it is answered 200: applied once.
    db.apply_once(
        "stripe-webhook",
        &event.id,
        async || -> Result<(), Problem> {
            let payment = match db.by_reference(&event.payment_intent).await? {
                Some(p) => Some(p),
                None => match event.order_id.as_deref().and_then(parse_uuid) {
                    Some(order) => db.by_order(&order).await?,
                    None => None,
                },
            };
            match payment {
                Some(p) => {
                    db.provider_outcome(
                        &p.order_id,
                        succeeded,
                        event.failure.as_deref(),
                        &event.payment_intent,
                        false,
                    )
                    .await?;
                }
                None => eprintln!(
                    "payments: Stripe event {} names payment intent {} that is not ours",
                    event.id, event.payment_intent
                ),
            }
            Ok(())
        },
    )
    .await?;
    Ok(json_response(200, &serde_json::json!({ "received": true })))
}

/// PayFast's ITN, accepted only when its signature matches (with
/// `payfast_passphrase`), it names our merchant and one of our PayFast
/// payments, its amount is that payment's, and PayFast confirms it sent it.
/// Applied once per PayFast payment id and status; answered 200 with an
/// empty body, as PayFast expects.
async fn payfast_itn(request: &Request) -> Result<Response, Problem> {
    let payfast = providers::PayFast::from_variables()
        .await
        .ok_or_else(|| Problem::not_found("PayFast is not enabled here"))?;
    let form = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(Problem::unsupported_media_type(
            "an ITN is application/x-www-form-urlencoded",
        ));
    }
    let itn = mart_domain::payfast::Itn::verify(request.body(), &payfast.merchant.passphrase)
        .map_err(Problem::bad_request)?;
    if itn.merchant_id != payfast.merchant.merchant_id {
        return Err(Problem::bad_request("the ITN is for another merchant"));
    }
    let not_ours = || {
        Problem::bad_request(format!(
            "m_payment_id {} is not a PayFast payment of ours",
            itn.m_payment_id
        ))
    };
    let order = parse_uuid(&itn.m_payment_id).ok_or_else(not_ours)?;
    let db = Db::connect().await?;
    let payment = db
        .by_order(&order)
        .await?
        .filter(|p| p.provider.as_deref() == Some("payfast"))
        .ok_or_else(not_ours)?;
    // Not saying what the amount should be: ITNs come from anyone.
    if !itn.amount_is(payment.amount_minor.unwrap_or(-1)) {
        return Err(Problem::bad_request(
            "amount_gross is not the payment's amount",
        ));
    }
    match payfast.confirm(&itn).await {
        Ok(true) => {}
        Ok(false) => return Err(Problem::bad_request("PayFast did not confirm this ITN")),
        // PayFast resends an ITN that was not answered 200.
        Err(e) => return Err(Problem::service_unavailable(e)),
    }
    let outcome = match itn.payment_status.as_str() {
        "COMPLETE" => Some((true, None)),
        "FAILED" => Some((false, Some("PayFast: the payment failed"))),
        "CANCELLED" => Some((false, Some("PayFast: the buyer cancelled the payment"))),
        _ => None, // e.g. PENDING: the final ITN follows
    };
    if let Some((succeeded, reason)) = outcome {
        // PayFast resends an ITN until it is answered 200: applied once
        // per PayFast payment and status.
        let key = format!("{}:{}", itn.pf_payment_id, itn.payment_status);
        db.apply_once("payfast-itn", &key, async || -> Result<(), Problem> {
            // A completed charge the payment does not count (the buyer paid
            // twice, or paid after a failed attempt) goes back.
            match db
                .provider_outcome(&order, succeeded, reason, &itn.pf_payment_id, true)
                .await?
            {
                true => Ok(()),
                false => Err(not_ours()),
            }
        })
        .await?;
    }
    Ok(Response::empty(200))
}
