//! The providers a payment can go through: the built-in `fake` one, Stripe
//! and PayFast over outbound HTTP (hosts in `allowed_outbound_hosts` from
//! the `*_base` variables, keys in secret variables).

use mart_domain::payfast::{self, Itn, Merchant};
use mart_domain::payments::{
    Charge, ChargeOutcome, FakeProvider, Provider, Refund, RefundOutcome, FAKE_PROVIDER,
};
use mart_domain::stripe;
use mart_guest::config::{fake_payments_allowed, optional_variable};
use spin_sdk::http::{Method, Request, Response};

/// The provider named `name`, if this deployment configured it. The fake
/// one only under the development switch: an order naming it (placed
/// before the switch went off, or an event not from the orders service)
/// must not be paid with a test token.
pub fn provider(name: &str) -> Option<Box<dyn Provider>> {
    match name {
        FAKE_PROVIDER => fake_payments_allowed()
            .unwrap_or(false)
            .then(|| Box::new(FakeProvider) as Box<dyn Provider>),
        "stripe" => Stripe::from_variables().map(|s| Box::new(s) as Box<dyn Provider>),
        "payfast" => PayFast::from_variables().map(|p| Box::new(p) as Box<dyn Provider>),
        _ => None,
    }
}

fn send(request: Request, to: &str) -> Result<Response, String> {
    spin_sdk::http::run(spin_sdk::http::send::<_, Response>(request))
        .map_err(|e| format!("cannot reach {to}: {e}"))
}

struct Stripe {
    api_base: String,
    secret_key: String,
}

impl Stripe {
    fn from_variables() -> Option<Self> {
        let secret_key = optional_variable("stripe_secret_key")?;
        let api_base =
            optional_variable("stripe_api_base").unwrap_or_else(|| "https://api.stripe.com".into());
        Some(Self {
            api_base: api_base.trim_end_matches('/').to_string(),
            secret_key,
        })
    }

    /// POSTs a form; the idempotency key makes a retry return the first
    /// answer instead of charging (or refunding) again.
    fn post(&self, path: &str, form: &[(&str, String)], key: &str) -> Result<Response, String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let request = Request::builder()
            .method(Method::Post)
            .uri(format!("{}{path}", self.api_base))
            .header("authorization", format!("Bearer {}", self.secret_key))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", key)
            .body(body)
            .build();
        send(request, "Stripe")
    }
}

impl Provider for Stripe {
    fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome {
        match self.post(
            "/v1/payment_intents",
            &stripe::payment_intent_form(charge),
            charge.order_id,
        ) {
            Ok(response) => stripe::charge_outcome(*response.status(), response.body()),
            Err(reason) => ChargeOutcome::Unavailable { reason },
        }
    }

    fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        // One refund per charge, so the charge names the refund's key.
        let key = format!("refund-{}", refund.reference);
        match self.post("/v1/refunds", &stripe::refund_form(refund.reference), &key) {
            Ok(response) => stripe::refund_outcome(*response.status(), response.body()),
            Err(reason) => RefundOutcome::Unavailable { reason },
        }
    }
}

/// PayFast's redirect flow (`mart_domain::payfast`): a charge is a signed
/// link to PayFast's payment page; the ITN settles it.
pub struct PayFast {
    pub merchant: Merchant,
    /// Payment page and ITN validation (`…/eng/process`, `…/eng/query/validate`).
    base: String,
    /// The refunds API.
    api_base: String,
}

impl PayFast {
    /// Configured when the merchant id, key, passphrase and notify URL are
    /// set. The passphrase is required: without it PayFast's MD5 signature
    /// has no secret in it, and anyone could sign an ITN.
    pub fn from_variables() -> Option<Self> {
        let base = |name: &str, default: &str| {
            optional_variable(name)
                .unwrap_or_else(|| default.into())
                .trim_end_matches('/')
                .to_string()
        };
        Some(Self {
            merchant: Merchant {
                merchant_id: optional_variable("payfast_merchant_id")?,
                merchant_key: optional_variable("payfast_merchant_key")?,
                passphrase: optional_variable("payfast_passphrase")?,
                notify_url: optional_variable("payfast_notify_url")?,
                return_url: optional_variable("payfast_return_url").unwrap_or_default(),
                cancel_url: optional_variable("payfast_cancel_url").unwrap_or_default(),
            },
            base: base("payfast_base", "https://www.payfast.co.za"),
            api_base: base("payfast_api_base", "https://api.payfast.co.za"),
        })
    }

    /// PayFast's server confirmation: the ITN's fields go back to PayFast,
    /// which answers `VALID` only for a notification it sent.
    pub fn confirm(&self, itn: &Itn) -> Result<bool, String> {
        let request = Request::builder()
            .method(Method::Post)
            .uri(format!("{}/eng/query/validate", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(itn.confirmation_body.clone())
            .build();
        let response = send(request, "PayFast")?;
        if !(200..300).contains(response.status()) {
            return Err(format!(
                "PayFast's validation answered {}",
                response.status()
            ));
        }
        Ok(String::from_utf8_lossy(response.body()).trim() == "VALID")
    }
}

impl Provider for PayFast {
    fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome {
        match payfast::checkout_url(&payfast::process_url(&self.base), &self.merchant, charge) {
            // The order id is PayFast's m_payment_id until the ITN brings
            // PayFast's own payment id.
            Ok(url) => ChargeOutcome::Redirect {
                reference: charge.order_id.to_string(),
                url,
            },
            Err(reason) => ChargeOutcome::Declined { reason },
        }
    }

    /// PayFast's refunds API takes no idempotency key, so a refund that may
    /// have gone through already (`retried`) is looked up first: asking
    /// twice must never refund twice.
    fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        if refund.retried {
            match self.already_refunded(refund) {
                Ok(true) => return RefundOutcome::Refunded,
                Ok(false) => {}
                Err(reason) => return RefundOutcome::Unavailable { reason },
            }
        }
        let (headers, body) = payfast::refund_request(
            &self.merchant,
            refund.amount_minor,
            refund.reason,
            &api_timestamp(),
        );
        let mut request = Request::builder();
        request
            .method(Method::Post)
            .uri(format!("{}/refunds/{}", self.api_base, refund.reference))
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in &headers {
            request.header(name.as_str(), value.as_str());
        }
        match send(request.body(body).build(), "PayFast") {
            Ok(response) => payfast::refund_outcome(*response.status(), response.body()),
            Err(reason) => RefundOutcome::Unavailable { reason },
        }
    }
}

impl PayFast {
    /// Whether PayFast has refunded the charge already (its refund
    /// retrieval, `GET {api}/refunds/{pf_payment_id}`).
    fn already_refunded(&self, refund: &Refund<'_>) -> Result<bool, String> {
        let mut request = Request::builder();
        request
            .method(Method::Get)
            .uri(format!("{}/refunds/{}", self.api_base, refund.reference));
        for (name, value) in &payfast::refund_retrieval_headers(&self.merchant, &api_timestamp()) {
            request.header(name.as_str(), value.as_str());
        }
        let response = send(request.body(Vec::new()).build(), "PayFast")?;
        payfast::already_refunded(*response.status(), response.body(), refund.amount_minor)
            .ok_or_else(|| format!("PayFast's refund retrieval answered {}", response.status()))
    }
}

/// The `timestamp` header of PayFast's API (ISO 8601, UTC).
fn api_timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}
