//! PayFast's redirect flow, as its documentation describes it (custom
//! integration): the buyer is sent to PayFast's payment page with the
//! order's fields and a signature; PayFast reports the outcome by an ITN
//! (Instant Transaction Notification) to our notify URL, which we accept
//! only after checking its signature, the merchant, the amount, and asking
//! PayFast itself (`/eng/query/validate`) that it sent it.
//!
//! PayFast's signatures are MD5 over PHP-style URL encoding: that is
//! PayFast's protocol, not our choice of hash. Passwords and tokens use
//! argon2 and ES256 elsewhere.

use md5::{Digest, Md5};

use crate::payments::{Charge, RefundOutcome};

/// The merchant's PayFast settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub merchant_id: String,
    pub merchant_key: String,
    /// Signs requests and ITNs when set in the PayFast dashboard.
    pub passphrase: String,
    /// Where the buyer lands after paying / after cancelling.
    pub return_url: String,
    pub cancel_url: String,
    /// Our public ITN endpoint (`…/payments/webhooks/payfast`).
    pub notify_url: String,
}

/// PayFast charges in South African rand only.
pub const CURRENCY: &str = "ZAR";

/// PHP's `urlencode`, which PayFast's signatures are defined with: letters,
/// digits and `-_.` stay, a space is `+`, anything else `%XX` (upper case).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `name=value&…` for a payment request (checkout page, API): values
/// trimmed and encoded, empty values left out, as PayFast's request
/// signatures are defined. ITNs are signed differently: see `itn_string`.
pub fn param_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
}

/// An ITN's signed string, as PayFast's ITN guide builds it: every posted
/// field in the order received, up to `signature`, empty ones included and
/// values as posted (not trimmed).
pub fn itn_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .take_while(|(k, _)| k != "signature")
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature of a request's `pairs` (in their order), with the
/// passphrase appended.
pub fn signature(pairs: &[(String, String)], passphrase: &str) -> String {
    sign(param_string(pairs), passphrase)
}

/// The signature of an ITN's fields (see `itn_string`).
pub fn itn_signature(pairs: &[(String, String)], passphrase: &str) -> String {
    sign(itn_string(pairs), passphrase)
}

fn sign(mut text: String, passphrase: &str) -> String {
    if !passphrase.is_empty() {
        text.push_str(&format!("&passphrase={}", urlencode(passphrase.trim())));
    }
    hex::encode(Md5::digest(text.as_bytes()))
}

/// Rand and cents as PayFast writes amounts: `1299` is `12.99`.
pub fn amount_text(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// PayFast's payment page under `base` (`https://www.payfast.co.za`, or the
/// sandbox): where `checkout_url` sends the buyer.
pub fn process_url(base: &str) -> String {
    format!("{}/eng/process", base.trim_end_matches('/'))
}

/// Whether `url` is a link to the payment page of the PayFast at `base`,
/// as `checkout_url` writes them: the page itself, then a query of
/// printable characters (no fragment, no space). Anything else in a
/// `payment.action_required` did not come from our payments service and
/// must never become the buyer's "Pay with PayFast" link.
pub fn is_checkout_url(url: &str, base: &str) -> bool {
    url.strip_prefix(&process_url(base))
        .and_then(|rest| rest.strip_prefix('?'))
        .is_some_and(|query| {
            !query.is_empty() && query.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        })
}

/// The URL of PayFast's payment page for `charge`, fields in the order
/// PayFast's documentation lists them (the signature depends on it). The
/// order id is `m_payment_id`, so the ITN names our order.
pub fn checkout_url(
    process_url: &str,
    merchant: &Merchant,
    charge: &Charge<'_>,
) -> Result<String, String> {
    if charge.currency != CURRENCY {
        return Err(format!(
            "PayFast charges only in {CURRENCY}, not {}",
            charge.currency
        ));
    }
    let fields: Vec<(String, String)> = [
        ("merchant_id", merchant.merchant_id.clone()),
        ("merchant_key", merchant.merchant_key.clone()),
        ("return_url", merchant.return_url.clone()),
        ("cancel_url", merchant.cancel_url.clone()),
        ("notify_url", merchant.notify_url.clone()),
        ("m_payment_id", charge.order_id.to_string()),
        ("amount", amount_text(charge.amount_minor)),
        ("item_name", format!("Mart order {}", charge.order_id)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let signature = signature(&fields, &merchant.passphrase);
    Ok(format!(
        "{process_url}?{}&signature={signature}",
        param_string(&fields)
    ))
}

/// What an ITN says, once its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Itn {
    /// Our order id.
    pub m_payment_id: String,
    /// PayFast's id of the payment (refunds use it).
    pub pf_payment_id: String,
    /// `COMPLETE`, `FAILED` or `CANCELLED`.
    pub payment_status: String,
    pub amount_gross: String,
    pub merchant_id: String,
    /// The signed part of the ITN (`itn_string`): what goes back to
    /// PayFast for server confirmation.
    pub confirmation_body: String,
}

impl Itn {
    /// Parses a form-encoded ITN and checks its signature against
    /// `passphrase`. The fields keep the order PayFast sent them in.
    pub fn verify(body: &[u8], passphrase: &str) -> Result<Itn, String> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let given = pairs
            .iter()
            .find(|(k, _)| k == "signature")
            .map(|(_, v)| v.clone())
            .ok_or("the ITN has no signature")?;
        if !constant_time_eq(
            itn_signature(&pairs, passphrase).as_bytes(),
            given.as_bytes(),
        ) {
            return Err("the ITN's signature does not match".into());
        }
        // Only what the signature covers counts.
        let fields: Vec<(String, String)> = pairs
            .into_iter()
            .take_while(|(k, _)| k != "signature")
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("the ITN has no {name}"))
        };
        Ok(Itn {
            m_payment_id: field("m_payment_id")?,
            pf_payment_id: field("pf_payment_id")?,
            payment_status: field("payment_status")?,
            amount_gross: field("amount_gross")?,
            merchant_id: field("merchant_id")?,
            confirmation_body: itn_string(&fields),
        })
    }

    /// Whether PayFast reports exactly `minor` cents.
    pub fn amount_is(&self, minor: i64) -> bool {
        self.amount_gross.trim() == amount_text(minor)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Headers and body of a refund through PayFast's API
/// (`POST {api}/refunds/{pf_payment_id}`): the API signs every header and
/// body variable, sorted by name, with the passphrase among them.
pub fn refund_request(
    merchant: &Merchant,
    amount_minor: i64,
    reason: &str,
    timestamp: &str,
) -> (Vec<(String, String)>, String) {
    let body = vec![
        ("amount".to_string(), amount_minor.to_string()),
        ("reason".to_string(), reason.to_string()),
    ];
    (api_headers(merchant, timestamp, &body), param_string(&body))
}

/// The headers of a refund retrieval (`GET {api}/refunds/{pf_payment_id}`):
/// what PayFast has refunded of a payment so far.
pub fn refund_retrieval_headers(merchant: &Merchant, timestamp: &str) -> Vec<(String, String)> {
    api_headers(merchant, timestamp, &[])
}

/// The merchant headers of an API call, signed over them and the `body`
/// variables, sorted by name, with the passphrase among them.
fn api_headers(
    merchant: &Merchant,
    timestamp: &str,
    body: &[(String, String)],
) -> Vec<(String, String)> {
    let headers = [
        ("merchant-id".to_string(), merchant.merchant_id.clone()),
        ("version".to_string(), "v1".to_string()),
        ("timestamp".to_string(), timestamp.to_string()),
    ];
    let mut signed: Vec<(String, String)> = body.iter().cloned().chain(headers.clone()).collect();
    if !merchant.passphrase.is_empty() {
        signed.push(("passphrase".to_string(), merchant.passphrase.clone()));
    }
    signed.sort();
    let mut all = headers.to_vec();
    all.push(("signature".to_string(), signature(&signed, "")));
    all
}

/// Reads PayFast's answer to a refund: 2xx refunded; 429 and 5xx worth
/// retrying; any other answer a refusal, with PayFast's message.
pub fn refund_outcome(status: u16, body: &[u8]) -> RefundOutcome {
    if status == 429 || status >= 500 {
        return RefundOutcome::Unavailable {
            reason: format!("PayFast answered {status}"),
        };
    }
    if (200..300).contains(&status) {
        return RefundOutcome::Refunded;
    }
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["data"]["response"].as_str().map(str::to_string));
    RefundOutcome::Refused {
        reason: match message {
            Some(m) => format!("PayFast refused the refund ({status}): {m}"),
            None => format!("PayFast refused the refund ({status})"),
        },
    }
}

/// Reads PayFast's refund retrieval: `Some(true)` when the payment was
/// already refunded by at least `amount_minor` (an earlier attempt went
/// through), `Some(false)` when not (no refund yet: PayFast answers 404 or
/// another status), `None` when PayFast could not say (retry later).
///
/// The answer's shape (`data.response.status` `COMPLETE`,
/// `data.response.refund_amount` in rand) follows PayFast's refunds API
/// description; like the rest of PayFast it is not verified against the
/// live service from these machines.
pub fn already_refunded(status: u16, body: &[u8], amount_minor: i64) -> Option<bool> {
    match status {
        404 => return Some(false),
        200..=299 => {}
        _ => return None,
    }
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let refund = &answer["data"]["response"];
    let complete = refund["status"].as_str() == Some("COMPLETE");
    let refunded_minor = refund["refund_amount"]
        .as_f64()
        .map(|rand| (rand * 100.0).round() as i64)
        .unwrap_or(0);
    Some(complete && refunded_minor >= amount_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant() -> Merchant {
        Merchant {
            merchant_id: "10000100".into(),
            merchant_key: "46f0cd694581a".into(),
            passphrase: "jt7NOE43FZPn".into(),
            return_url: "https://shop.example/paid".into(),
            cancel_url: "https://shop.example/cancelled".into(),
            notify_url: "https://shop.example/payments/webhooks/payfast".into(),
        }
    }

    fn charge(currency: &str) -> Charge<'static> {
        Charge {
            order_id: "5f0c3a52-1111-4222-8333-944455556666",
            amount_minor: 129_950,
            currency: if currency == "ZAR" { "ZAR" } else { "EUR" },
            token: "",
        }
    }

    #[test]
    fn urlencode_is_php_style() {
        assert_eq!(urlencode("a b*c~d/é"), "a+b%2Ac%7Ed%2F%C3%A9");
        assert_eq!(urlencode("Az09-_."), "Az09-_.");
    }

    #[test]
    fn the_signature_is_md5_of_the_ordered_fields_and_passphrase() {
        let fields = vec![
            ("merchant_id".to_string(), "10000100".to_string()),
            ("amount".to_string(), "5.00".to_string()),
            ("item_name".to_string(), "Tea cup".to_string()),
            ("email_address".to_string(), "".to_string()),
        ];
        // md5("merchant_id=10000100&amount=5.00&item_name=Tea+cup&passphrase=secret+pass")
        let expected = hex::encode(Md5::digest(
            b"merchant_id=10000100&amount=5.00&item_name=Tea+cup&passphrase=secret+pass",
        ));
        assert_eq!(signature(&fields, "secret pass"), expected);
        assert_ne!(signature(&fields, ""), expected);
    }

    #[test]
    fn amounts_are_rand_and_cents() {
        assert_eq!(amount_text(129_950), "1299.50");
        assert_eq!(amount_text(5), "0.05");
        assert_eq!(amount_text(100), "1.00");
    }

    #[test]
    fn the_checkout_url_carries_the_order_and_a_signature_over_its_fields() {
        let url = checkout_url(
            "https://sandbox.payfast.co.za/eng/process",
            &merchant(),
            &charge("ZAR"),
        )
        .unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://sandbox.payfast.co.za/eng/process");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "merchant_id",
                "merchant_key",
                "return_url",
                "cancel_url",
                "notify_url",
                "m_payment_id",
                "amount",
                "item_name",
                "signature"
            ]
        );
        let (signed, sig) = pairs.split_at(pairs.len() - 1);
        assert_eq!(sig[0].1, signature(signed, "jt7NOE43FZPn"));
        assert!(pairs.contains(&("amount".into(), "1299.50".into())));
    }

    #[test]
    fn payfast_refuses_other_currencies() {
        let err = checkout_url("https://x/eng/process", &merchant(), &charge("EUR")).unwrap_err();
        assert!(err.contains("ZAR"), "{err}");
    }

    fn itn(passphrase: &str, amount: &str) -> Vec<u8> {
        let fields: Vec<(String, String)> = [
            ("m_payment_id", "5f0c3a52-1111-4222-8333-944455556666"),
            ("pf_payment_id", "1089250"),
            ("payment_status", "COMPLETE"),
            ("item_name", "Mart order 5f0c3a52"),
            ("amount_gross", amount),
            ("amount_fee", "-29.90"),
            ("amount_net", "1269.60"),
            ("merchant_id", "10000100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = itn_signature(&fields, passphrase);
        format!("{}&signature={sig}", itn_string(&fields)).into_bytes()
    }

    #[test]
    fn an_itn_is_signed_over_every_field_as_posted_blank_ones_included() {
        // Written out by hand from PayFast's ITN guide: fields in the order
        // posted, blanks kept, PHP urlencode, then the passphrase.
        let signed = "m_payment_id=01AB&pf_payment_id=1089250&payment_status=COMPLETE\
                      &item_name=Tea+cup&amount_gross=5.00&name_last=&custom_str1=\
                      &email_address=a%40b.example&merchant_id=10000100";
        let expected = hex::encode(Md5::digest(format!("{signed}&passphrase=pass+word")));
        let body = format!("{signed}&signature={expected}");
        let itn = Itn::verify(body.as_bytes(), "pass word").unwrap();
        assert_eq!(itn.confirmation_body, signed);
        assert_eq!(itn.amount_gross, "5.00");
        // Dropping the blank fields (as request signatures do) would not match.
        let request_style = signature(
            &form_urlencoded::parse(signed.as_bytes())
                .into_owned()
                .collect::<Vec<_>>(),
            "pass word",
        );
        assert_ne!(request_style, expected);
    }

    #[test]
    fn fields_after_the_signature_are_not_trusted() {
        let mut body = itn("p", "5.00");
        body.extend_from_slice(b"&amount_gross=0.01");
        let itn = Itn::verify(&body, "p").unwrap();
        assert_eq!(itn.amount_gross, "5.00");
    }

    #[test]
    fn an_itn_is_accepted_only_with_the_right_signature() {
        let body = itn("jt7NOE43FZPn", "1299.50");
        let parsed = Itn::verify(&body, "jt7NOE43FZPn").unwrap();
        assert_eq!(parsed.pf_payment_id, "1089250");
        assert_eq!(parsed.payment_status, "COMPLETE");
        assert!(parsed.amount_is(129_950));
        assert!(!parsed.amount_is(129_951));
        assert!(!parsed.confirmation_body.contains("signature"));
        assert!(parsed
            .confirmation_body
            .starts_with("m_payment_id=5f0c3a52"));

        assert!(Itn::verify(&body, "another passphrase").is_err());
        let tampered = String::from_utf8(body).unwrap().replace("1299.50", "1.00");
        assert!(Itn::verify(tampered.as_bytes(), "jt7NOE43FZPn").is_err());
        assert!(Itn::verify(b"m_payment_id=x", "").is_err());
    }

    #[test]
    fn refunds_sign_sorted_headers_and_body_with_the_passphrase() {
        let (headers, body) = refund_request(&merchant(), 1000, "cancelled", "2026-11-22T10:00:00");
        assert_eq!(body, "amount=1000&reason=cancelled");
        let expected = hex::encode(Md5::digest(
            "amount=1000&merchant-id=10000100&passphrase=jt7NOE43FZPn&reason=cancelled\
             &timestamp=2026-11-22T10%3A00%3A00&version=v1"
                .as_bytes(),
        ));
        assert!(headers.contains(&("signature".into(), expected)));
        assert!(headers.contains(&("merchant-id".into(), "10000100".into())));
        let retrieval = refund_retrieval_headers(&merchant(), "2026-11-22T10:00:00");
        let expected = hex::encode(Md5::digest(
            "merchant-id=10000100&passphrase=jt7NOE43FZPn&timestamp=2026-11-22T10%3A00%3A00&version=v1"
                .as_bytes(),
        ));
        assert!(retrieval.contains(&("signature".into(), expected)));
    }

    #[test]
    fn a_refund_payfast_already_made_is_recognised_before_refunding_again() {
        let done = br#"{"code":200,"status":"success","data":{"response":{"status":"COMPLETE","refund_amount":50.00}}}"#;
        assert_eq!(already_refunded(200, done, 5000), Some(true));
        assert_eq!(already_refunded(200, done, 5001), Some(false), "partly");
        assert_eq!(already_refunded(404, b"", 5000), Some(false));
        assert_eq!(already_refunded(503, b"", 5000), None);
        assert_eq!(already_refunded(200, b"not json", 5000), None);
        assert_eq!(refund_outcome(200, b"{}"), RefundOutcome::Refunded);
        assert!(matches!(
            refund_outcome(502, b""),
            RefundOutcome::Unavailable { .. }
        ));
        let refused = br#"{"code":400,"status":"failed","data":{"response":"Refund amount exceeds the available balance"}}"#;
        assert!(matches!(
            refund_outcome(400, refused),
            RefundOutcome::Refused { reason } if reason.contains("exceeds")
        ));
    }

    #[test]
    fn only_links_to_the_configured_payment_page_are_checkout_urls() {
        let base = "https://sandbox.payfast.co.za/";
        let page = checkout_url(&process_url(base), &merchant(), &charge("ZAR")).unwrap();
        assert!(is_checkout_url(&page, base), "{page}");
        for forged in [
            "https://evil.example/eng/process?merchant_id=1",
            "https://sandbox.payfast.co.za.evil.example/eng/process?a=1",
            "https://sandbox.payfast.co.za@evil.example/eng/process?a=1",
            "http://sandbox.payfast.co.za/eng/process?a=1",
            "https://sandbox.payfast.co.za/eng/processor?a=1",
            "https://sandbox.payfast.co.za/eng/process",
            "https://sandbox.payfast.co.za/eng/process?",
            "https://sandbox.payfast.co.za/eng/process?a=1#x",
            "https://sandbox.payfast.co.za/eng/process?a=1 b",
            "javascript:alert(1)//https://sandbox.payfast.co.za/eng/process?a=1",
        ] {
            assert!(!is_checkout_url(forged, base), "{forged}");
        }
    }
}
