//! The providers a payment can go through: the built-in `fake` one, Stripe
//! and PayFast over outbound HTTP (hosts in `allowed_outbound_hosts` from
//! the `*_base` variables, keys in secret variables).

use mart_domain::payfast::{self, Itn, Merchant};
use mart_domain::payments::{
    Charge, ChargeOutcome, FakeProvider, Provider as _, Refund, RefundOutcome, FAKE_PROVIDER,
};
use mart_domain::stripe;
use mart_guest::config::{fake_payments_allowed, optional_variable};
use mart_guest::{Method, Response};

/// A provider this deployment configured. `mart_domain::payments::Provider`
/// is sync and Stripe's and PayFast's calls are async now, so the choice
/// among them is this enum rather than a `dyn Provider`; each answers as
/// its `Provider` implementation did.
pub enum Configured {
    Fake,
    Stripe(Stripe),
    PayFast(PayFast),
}

impl Configured {
    pub async fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome {
        match self {
            Self::Fake => FakeProvider.charge(charge),
            Self::Stripe(stripe) => stripe.charge(charge).await,
            Self::PayFast(payfast) => payfast.charge(charge),
        }
    }

    pub async fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        match self {
            Self::Fake => FakeProvider.refund(refund),
            Self::Stripe(stripe) => stripe.refund(refund).await,
            Self::PayFast(payfast) => payfast.refund(refund).await,
        }
    }
}

/// The provider named `name`, if this deployment configured it. The fake
/// one only under the development switch: an order naming it (placed
/// before the switch went off, or an event not from the orders service)
/// must not be paid with a test token.
pub async fn provider(name: &str) -> Option<Configured> {
    match name {
        FAKE_PROVIDER => fake_payments_allowed()
            .await
            .unwrap_or(false)
            .then_some(Configured::Fake),
        "stripe" => Stripe::from_variables().await.map(Configured::Stripe),
        "payfast" => PayFast::from_variables().await.map(Configured::PayFast),
        _ => None,
    }
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    to: &str,
) -> Result<Response, String> {
    mart_guest::http::send(method, url, headers, body)
        .await
        .map_err(|e| format!("cannot reach {to}: {e}"))
}

pub struct Stripe {
    api_base: String,
    secret_key: String,
}

impl Stripe {
    async fn from_variables() -> Option<Self> {
        let secret_key = optional_variable("stripe_secret_key").await?;
        let api_base = optional_variable("stripe_api_base")
            .await
            .unwrap_or_else(|| "https://api.stripe.com".into());
        Some(Self {
            api_base: api_base.trim_end_matches('/').to_string(),
            secret_key,
        })
    }

    /// POSTs a form; the idempotency key makes a retry return the first
    /// answer instead of charging (or refunding) again.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        key: &str,
    ) -> Result<Response, String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let authorization = format!("Bearer {}", self.secret_key);
        let headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("idempotency-key", key),
        ];
        let url = format!("{}{path}", self.api_base);
        send(Method::Post, &url, &headers, body.into_bytes(), "Stripe").await
    }

    async fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome {
        match self
            .post(
                "/v1/payment_intents",
                &stripe::payment_intent_form(charge),
                charge.order_id,
            )
            .await
        {
            Ok(response) => stripe::charge_outcome(response.status(), response.body()),
            Err(reason) => ChargeOutcome::Unavailable { reason },
        }
    }

    async fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        // One refund per charge, so the charge names the refund's key.
        let key = format!("refund-{}", refund.reference);
        match self
            .post("/v1/refunds", &stripe::refund_form(refund.reference), &key)
            .await
        {
            Ok(response) => stripe::refund_outcome(response.status(), response.body()),
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

/// A base URL from variable `name` (`default` if unset), without a
/// trailing slash.
async fn base_variable(name: &str, default: &str) -> String {
    optional_variable(name)
        .await
        .unwrap_or_else(|| default.into())
        .trim_end_matches('/')
        .to_string()
}

impl PayFast {
    /// Configured when the merchant id, key, passphrase and notify URL are
    /// set. The passphrase is required: without it PayFast's MD5 signature
    /// has no secret in it, and anyone could sign an ITN.
    pub async fn from_variables() -> Option<Self> {
        Some(Self {
            merchant: Merchant {
                merchant_id: optional_variable("payfast_merchant_id").await?,
                merchant_key: optional_variable("payfast_merchant_key").await?,
                passphrase: optional_variable("payfast_passphrase").await?,
                notify_url: optional_variable("payfast_notify_url").await?,
                return_url: optional_variable("payfast_return_url")
                    .await
                    .unwrap_or_default(),
                cancel_url: optional_variable("payfast_cancel_url")
                    .await
                    .unwrap_or_default(),
            },
            base: base_variable("payfast_base", "https://www.payfast.co.za").await,
            api_base: base_variable("payfast_api_base", "https://api.payfast.co.za").await,
        })
    }

    /// PayFast's server confirmation: the ITN's fields go back to PayFast,
    /// which answers `VALID` only for a notification it sent.
    pub async fn confirm(&self, itn: &Itn) -> Result<bool, String> {
        let response = send(
            Method::Post,
            &format!("{}/eng/query/validate", self.base),
            &[("content-type", "application/x-www-form-urlencoded")],
            itn.confirmation_body.clone().into(),
            "PayFast",
        )
        .await?;
        if !(200..300).contains(&response.status()) {
            return Err(format!(
                "PayFast's validation answered {}",
                response.status()
            ));
        }
        Ok(String::from_utf8_lossy(response.body()).trim() == "VALID")
    }

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
    async fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        if refund.retried {
            match self.already_refunded(refund).await {
                Ok(true) => return RefundOutcome::Refunded,
                Ok(false) => {}
                Err(reason) => return RefundOutcome::Unavailable { reason },
            }
        }
        let (signed, body) = payfast::refund_request(
            &self.merchant,
            refund.amount_minor,
            refund.reason,
            &api_timestamp(),
        );
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let url = format!("{}/refunds/{}", self.api_base, refund.reference);
        match send(Method::Post, &url, &headers, body.into_bytes(), "PayFast").await {
            Ok(response) => payfast::refund_outcome(response.status(), response.body()),
            Err(reason) => RefundOutcome::Unavailable { reason },
        }
    }

    /// Whether PayFast has refunded the charge already (its refund
    /// retrieval, `GET {api}/refunds/{pf_payment_id}`).
    async fn already_refunded(&self, refund: &Refund<'_>) -> Result<bool, String> {
        let signed = payfast::refund_retrieval_headers(&self.merchant, &api_timestamp());
        let headers: Vec<(&str, &str)> = signed
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let url = format!("{}/refunds/{}", self.api_base, refund.reference);
        let response = send(Method::Get, &url, &headers, Vec::new(), "PayFast").await?;
        payfast::already_refunded(response.status(), response.body(), refund.amount_minor)
            .ok_or_else(|| format!("PayFast's refund retrieval answered {}", response.status()))
    }
}

/// The `timestamp` header of PayFast's API (ISO 8601, UTC).
fn api_timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}
