//! The providers a payment can go through: the built-in `fake` one, and
//! Stripe over outbound HTTP (host in `allowed_outbound_hosts` from the
//! `stripe_api_base` variable, key in the secret `stripe_secret_key`).

use mart_domain::payments::{Charge, ChargeOutcome, FakeProvider, Provider};
use mart_domain::stripe;
use mart_guest::config::optional_variable;
use spin_sdk::http::{Method, Request, Response};

/// The provider named `name`, if this deployment configured it.
pub fn provider(name: &str) -> Option<Box<dyn Provider>> {
    match name {
        "fake" => Some(Box::new(FakeProvider)),
        "stripe" => Stripe::from_variables().map(|s| Box::new(s) as Box<dyn Provider>),
        _ => None,
    }
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
        spin_sdk::http::run(spin_sdk::http::send::<_, Response>(request))
            .map_err(|e| format!("cannot reach Stripe: {e}"))
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

    fn refund(&self, reference: &str, _amount_minor: i64) -> Result<(), String> {
        let key = format!("refund-{reference}");
        let response = self.post("/v1/refunds", &stripe::refund_form(reference), &key)?;
        match *response.status() {
            200..=299 => Ok(()),
            status => Err(format!("Stripe refused the refund ({status})")),
        }
    }
}
