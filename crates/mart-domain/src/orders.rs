//! Orders: the request to place one, the status machine every change goes
//! through, and what an order's events carry.

use serde::{Deserialize, Serialize};

use crate::events::EventData;
use crate::{parse_uuid, DomainError, FieldError};

/// Most distinct lines in one order.
pub const MAX_LINES: usize = 100;
/// Providers the payments service implements. A deployment enables some of
/// them (the `payment_providers` variable); an order naming another is
/// refused, so no order is accepted that nobody can charge.
pub const PAYMENT_PROVIDERS: [&str; 3] = ["fake", "stripe", "payfast"];
/// Providers whose buyer pays on the provider's own page: the order names
/// no token, and answers with the page's URL once the stock is held.
pub const REDIRECT_PROVIDERS: [&str; 1] = ["payfast"];

/// The enabled providers from a `payment_providers` setting (`fake,stripe`),
/// keeping only those the payments service implements. The `fake` provider
/// pays for real goods with test tokens, so a setting that names it is
/// refused outright unless `fake_allowed` (the `allow_fake_payments`
/// development switch) says this is not a shop anyone can rob.
pub fn enabled_providers(setting: &str, fake_allowed: bool) -> Result<Vec<&str>, DomainError> {
    let enabled: Vec<&str> = setting
        .split(',')
        .map(str::trim)
        .filter(|p| PAYMENT_PROVIDERS.contains(p))
        .collect();
    if enabled.contains(&crate::payments::FAKE_PROVIDER) && !fake_allowed {
        return Err(DomainError::unavailable(
            crate::payments::FAKE_PROVIDER_REFUSED,
        ));
    }
    Ok(enabled)
}

/// An order's status. Allowed moves are listed in `Status::can_become`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Reserved,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Reserved,
        Status::Paid,
        Status::Shipped,
        Status::Delivered,
        Status::Cancelled,
        Status::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Reserved => "reserved",
            Status::Paid => "paid",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The status machine:
    /// `pending → reserved → paid → shipped → delivered`;
    /// `pending | reserved → cancelled`; `paid → refunded`.
    /// `pending → paid` is allowed because the payment event may reach the
    /// orders service before the reservation event (different topics); a
    /// payment is only ever taken after the stock was reserved.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Reserved)
                | (Pending, Paid)
                | (Reserved, Paid)
                | (Paid, Shipped)
                | (Shipped, Delivered)
                | (Pending, Cancelled)
                | (Reserved, Cancelled)
                | (Paid, Refunded)
        )
    }

    /// The move, or a conflict that says why it is not allowed.
    pub fn transition(self, next: Status) -> Result<Status, DomainError> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(DomainError::conflict(format!(
                "an order that is {} cannot become {}",
                self.as_str(),
                next.as_str()
            )))
        }
    }

    /// Waiting for the saga (stock or payment): subject to the deadline.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Reserved)
    }
}

/// Why an order was cancelled (recorded in its history and its event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    PaymentTimedOut,
    CancelledByUser,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "out of stock",
            CancelReason::PaymentDeclined => "payment declined",
            CancelReason::PaymentTimedOut => "payment timed out",
            CancelReason::CancelledByUser => "cancelled by user",
        }
    }
}

/// What the orders service does with an event of another service: the
/// order's side of the saga, decided here and applied by its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaStep {
    /// Move the order to `status`; a move the order's status no longer
    /// allows (it moved on, the events crossed) is skipped.
    Move {
        order_id: String,
        status: Status,
        reason: Option<String>,
    },
    /// Show the buyer the provider's page to pay on (PayFast).
    PaymentPage { order_id: String, url: String },
}

/// Where this shop may send a buyer to pay: the configured page of each
/// redirect provider (PayFast's `payfast_base`). The URL in a
/// `payment.action_required` is checked against it before the buyer sees
/// it, so an event that did not come from our payments service cannot
/// turn the shop's "Pay" link into someone else's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPages {
    pub payfast_base: String,
}

impl PaymentPages {
    pub fn allows(&self, url: &str) -> bool {
        crate::payfast::is_checkout_url(url, &self.payfast_base)
    }
}

/// The order's next step for `event`; `None` for events it does not follow.
/// A payment page not on `pages` is invalid (the event is dead-lettered).
pub fn saga_step(event: &EventData, pages: &PaymentPages) -> Result<Option<SagaStep>, DomainError> {
    let step = |order_id: &str, status, reason| {
        Some(SagaStep::Move {
            order_id: order_id.to_string(),
            status,
            reason,
        })
    };
    Ok(match event {
        EventData::InventoryReserved(data) => step(&data.order_id, Status::Reserved, None),
        EventData::InventoryRejected(data) => {
            let reason = format!("{}: {}", CancelReason::OutOfStock.as_str(), data.reason);
            step(&data.order_id, Status::Cancelled, Some(reason))
        }
        EventData::PaymentSucceeded(data) => step(&data.order_id, Status::Paid, None),
        EventData::PaymentFailed(data) => {
            let declined = CancelReason::PaymentDeclined.as_str();
            let reason = match &data.reason {
                Some(r) => format!("{declined}: {r}"),
                None => declined.to_string(),
            };
            step(&data.order_id, Status::Cancelled, Some(reason))
        }
        EventData::PaymentRefunded(data) => {
            step(&data.order_id, Status::Refunded, data.reason.clone())
        }
        EventData::PaymentActionRequired(data) => {
            let url = data.redirect_url.clone().ok_or_else(|| {
                DomainError::invalid("redirect_url", "payment.action_required without a URL")
            })?;
            if !pages.allows(&url) {
                return Err(DomainError::invalid(
                    "redirect_url",
                    format!(
                        "`{url}` is not the configured payment page ({}); \
                         not shown to the buyer",
                        crate::payfast::process_url(&pages.payfast_base)
                    ),
                ));
            }
            Some(SagaStep::PaymentPage {
                order_id: data.order_id.clone(),
                url,
            })
        }
        _ => None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// How the customer pays: a provider and its token (never card numbers);
/// no token for a redirect provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    pub provider: String,
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub product_id: String,
    pub quantity: i32,
}

/// `POST /orders`: from a cart, or from explicit items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    #[serde(default)]
    pub cart_id: Option<String>,
    #[serde(default)]
    pub items: Option<Vec<ItemRequest>>,
    pub shipping_address: Address,
    pub payment: PaymentMethod,
}

/// Where the lines come from, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSource {
    Cart(String),
    /// Sorted by product id, duplicates merged.
    Items(Vec<ItemRequest>),
}

impl PlaceOrder {
    /// Checks everything that needs no other service; every problem found
    /// is reported at once, each naming its field. `providers`: the payment
    /// providers this deployment enabled.
    pub fn validate(&self, providers: &[&str]) -> Result<LineSource, DomainError> {
        // Fail closed: a deployment that never chose a provider takes no
        // orders (rather than accepting test tokens as payment).
        if providers.is_empty() {
            return Err(DomainError::unavailable(
                "this shop takes no orders yet: no payment provider is configured \
                 (the payment_providers variable)",
            ));
        }
        let mut errors = Vec::new();
        let source = match (&self.cart_id, &self.items) {
            (Some(cart), None) => match parse_uuid(cart) {
                Some(id) => Some(LineSource::Cart(id)),
                None => {
                    errors.push(FieldError::new("cart_id", "must be a cart id (a UUID)"));
                    None
                }
            },
            (None, Some(items)) => validate_items(items, &mut errors).map(LineSource::Items),
            _ => {
                errors.push(FieldError::new(
                    "cart_id",
                    "give either cart_id or items, not both or neither",
                ));
                None
            }
        };
        validate_address(&self.shipping_address, &mut errors);
        if !providers.contains(&self.payment.provider.as_str()) {
            errors.push(FieldError::new(
                "payment.provider",
                format!("must be one of {}", providers.join(", ")),
            ));
        }
        let redirect = REDIRECT_PROVIDERS.contains(&self.payment.provider.as_str());
        if redirect && !self.payment.token.is_empty() {
            errors.push(FieldError::new(
                "payment.token",
                "must be left out: the buyer pays on the provider's page",
            ));
        } else if !redirect && !(1..=200).contains(&self.payment.token.len()) {
            errors.push(FieldError::new(
                "payment.token",
                "must be 1 to 200 characters",
            ));
        }
        match source {
            Some(source) if errors.is_empty() => Ok(source),
            _ => Err(DomainError::Invalid(errors)),
        }
    }
}

/// Most orders one customer may have waiting for stock or payment at once:
/// each holds stock until it is paid or expires.
pub const MAX_OPEN_ORDERS: i64 = 5;

fn validate_items(items: &[ItemRequest], errors: &mut Vec<FieldError>) -> Option<Vec<ItemRequest>> {
    if items.is_empty() || items.len() > MAX_LINES {
        errors.push(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_LINES} lines"),
        ));
        return None;
    }
    let mut merged: Vec<ItemRequest> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = parse_uuid(&item.product_id) else {
            errors.push(FieldError::new(
                format!("items[{i}].product_id"),
                "must be a product id (a UUID)",
            ));
            continue;
        };
        if !(1..=crate::carts::MAX_QUANTITY).contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                format!("must be from 1 to {}", crate::carts::MAX_QUANTITY),
            ));
            continue;
        }
        match merged.iter_mut().find(|m| m.product_id == id) {
            // At most MAX_LINES × MAX_QUANTITY in all: no overflow.
            Some(m) => m.quantity += item.quantity,
            None => merged.push(ItemRequest {
                product_id: id,
                quantity: item.quantity,
            }),
        }
    }
    if let Some(m) = merged
        .iter()
        .find(|m| m.quantity > crate::carts::MAX_QUANTITY)
    {
        errors.push(FieldError::new(
            "items",
            format!(
                "product {} is ordered more than {} times",
                m.product_id,
                crate::carts::MAX_QUANTITY
            ),
        ));
    }
    merged.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    Some(merged)
}

fn validate_address(address: &Address, errors: &mut Vec<FieldError>) {
    let required = [
        ("name", &address.name),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
    ];
    for (field, value) in required {
        if value.trim().is_empty() || value.len() > 200 {
            errors.push(FieldError::new(
                format!("shipping_address.{field}"),
                "must be 1 to 200 characters",
            ));
        }
    }
    if address.line2.as_ref().is_some_and(|l| l.len() > 200) {
        errors.push(FieldError::new(
            "shipping_address.line2",
            "must be at most 200 characters",
        ));
    }
    let country_ok =
        address.country.len() == 2 && address.country.chars().all(|c| c.is_ascii_uppercase());
    if !country_ok {
        errors.push(FieldError::new(
            "shipping_address.country",
            "must be an ISO 3166-1 alpha-2 code such as DE",
        ));
    }
}

/// A line as ordered: the price is the catalog's at placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

pub fn total_minor(lines: &[OrderLine]) -> i64 {
    lines
        .iter()
        .map(|l| l.unit_price_minor * i64::from(l.quantity))
        .sum()
}

/// `order.placed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub user_id: String,
    /// The cart it was placed from, which the carts service then closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_id: Option<String>,
    pub lines: Vec<OrderLine>,
    pub total_minor: i64,
    pub currency: String,
    pub payment: PaymentMethod,
}

/// `order.paid`, `order.cancelled`, `order.refunded`, `order.shipped`,
/// `order.delivered`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChanged {
    pub order_id: String,
    pub user_id: String,
    pub status: Status,
    #[serde(default)]
    pub reason: Option<String>,
    pub total_minor: i64,
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Problem;

    #[test]
    fn the_status_machine_allows_only_its_moves() {
        use Status::*;
        let allowed = [
            (Pending, Reserved),
            (Pending, Paid),
            (Reserved, Paid),
            (Paid, Shipped),
            (Shipped, Delivered),
            (Pending, Cancelled),
            (Reserved, Cancelled),
            (Paid, Refunded),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        let err = Shipped.transition(Cancelled).unwrap_err();
        assert_eq!(
            err,
            DomainError::conflict("an order that is shipped cannot become cancelled")
        );
        assert_eq!(Reserved.transition(Paid).unwrap(), Paid);
    }

    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(Status::parse("lost"), None);
    }

    fn request(items: serde_json::Value) -> PlaceOrder {
        serde_json::from_value(serde_json::json!({
            "items": items,
            "shipping_address": {"name": "A", "line1": "1 Road", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "payment": {"provider": "fake", "token": "tok_visa"}
        }))
        .unwrap()
    }

    const P1: &str = "0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10";
    const P2: &str = "1b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10";

    #[test]
    fn items_are_merged_and_sorted() {
        let r = request(serde_json::json!([
            {"product_id": P2, "quantity": 1},
            {"product_id": P1.to_uppercase(), "quantity": 2},
            {"product_id": P2, "quantity": 3}
        ]));
        let LineSource::Items(items) = r.validate(&["fake"]).unwrap() else {
            panic!("items expected")
        };
        assert_eq!(
            items,
            vec![
                ItemRequest {
                    product_id: P1.into(),
                    quantity: 2
                },
                ItemRequest {
                    product_id: P2.into(),
                    quantity: 4
                },
            ]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = request(serde_json::json!([{"product_id": "nope", "quantity": 0}]));
        r.shipping_address.country = "Germany".into();
        r.payment.provider = "cash".into();
        let problem = r.validate(&["fake"]).map_err(Problem::from).unwrap_err();
        assert_eq!(problem.status, 422);
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].product_id",
                "shipping_address.country",
                "payment.provider"
            ]
        );
        let mut both = request(serde_json::json!([{"product_id": P1, "quantity": 1}]));
        both.cart_id = Some(P2.into());
        assert_eq!(
            both.validate(&["fake"])
                .map_err(Problem::from)
                .unwrap_err()
                .errors[0]
                .field,
            "cart_id"
        );
        let empty = request(serde_json::json!([]));
        assert_eq!(
            empty
                .validate(&["fake"])
                .map_err(Problem::from)
                .unwrap_err()
                .errors[0]
                .field,
            "items"
        );
    }

    #[test]
    fn only_implemented_providers_can_be_enabled() {
        assert_eq!(
            enabled_providers("fake, stripe,paypal,", true).unwrap(),
            ["fake", "stripe"]
        );
        let r = request(serde_json::json!([{"product_id": P1, "quantity": 1}]));
        let mut stripe = r.clone();
        stripe.payment.provider = "stripe".into();
        assert!(stripe.validate(&["fake", "stripe"]).is_ok());
        let problem = stripe
            .validate(&["fake"])
            .map_err(Problem::from)
            .unwrap_err();
        assert_eq!(problem.errors[0].field, "payment.provider");
        assert_eq!(problem.errors[0].message, "must be one of fake");
        // Nothing configured: no order is taken at all.
        let none = r
            .validate(&enabled_providers("", false).unwrap())
            .map_err(Problem::from)
            .unwrap_err();
        assert_eq!(none.status, 503);
        assert!(none.detail.contains("payment_providers"), "{}", none.detail);
    }

    #[test]
    fn the_fake_provider_takes_no_order_without_the_development_switch() {
        for setting in ["fake", "stripe, fake", " fake ,payfast"] {
            let refused = Problem::from(enabled_providers(setting, false).unwrap_err());
            assert_eq!(refused.status, 503, "{setting}");
            assert!(
                refused.detail.contains("allow_fake_payments"),
                "{}",
                refused.detail
            );
        }
        assert_eq!(
            enabled_providers("stripe,payfast", false).unwrap(),
            ["stripe", "payfast"]
        );
        assert_eq!(enabled_providers("fake", true).unwrap(), ["fake"]);
    }

    #[test]
    fn a_redirect_provider_takes_no_token() {
        let r = request(serde_json::json!([{"product_id": P1, "quantity": 1}]));
        let mut payfast = r.clone();
        payfast.payment = PaymentMethod {
            provider: "payfast".into(),
            token: String::new(),
        };
        assert!(payfast.validate(&["payfast"]).is_ok());
        payfast.payment.token = "tok_visa".into();
        let problem = payfast
            .validate(&["payfast"])
            .map_err(Problem::from)
            .unwrap_err();
        assert_eq!(problem.errors[0].field, "payment.token");
        let mut fake = r;
        fake.payment.token = String::new();
        assert_eq!(
            fake.validate(&["fake"])
                .map_err(Problem::from)
                .unwrap_err()
                .errors[0]
                .field,
            "payment.token"
        );
    }

    #[test]
    fn totals_use_the_snapshot_prices() {
        let lines = vec![
            OrderLine {
                product_id: P1.into(),
                name: "a".into(),
                quantity: 2,
                unit_price_minor: 250,
            },
            OrderLine {
                product_id: P2.into(),
                name: "b".into(),
                quantity: 1,
                unit_price_minor: 1000,
            },
        ];
        assert_eq!(total_minor(&lines), 1500);
    }

    fn payment(
        reason: Option<&str>,
        redirect_url: Option<&str>,
    ) -> crate::payments::PaymentChanged {
        crate::payments::PaymentChanged {
            payment_id: "p1".into(),
            order_id: "o1".into(),
            user_id: "u1".into(),
            status: crate::payments::PaymentStatus::Pending,
            amount_minor: 100,
            currency: "EUR".into(),
            reason: reason.map(str::to_string),
            redirect_url: redirect_url.map(str::to_string),
        }
    }

    fn moves_to(step: Option<SagaStep>) -> (Status, Option<String>) {
        match step {
            Some(SagaStep::Move {
                order_id,
                status,
                reason,
            }) => {
                assert_eq!(order_id, "o1");
                (status, reason)
            }
            other => panic!("not a move: {other:?}"),
        }
    }

    fn pages() -> PaymentPages {
        PaymentPages {
            payfast_base: "https://pay.example".into(),
        }
    }

    #[test]
    fn the_order_follows_reservations_and_payments() {
        use crate::events::{InventoryChanged, InventoryRejected};
        let reserved = EventData::InventoryReserved(InventoryChanged {
            order_id: "o1".into(),
            status: "reserved".into(),
            lines: vec![],
        });
        assert_eq!(
            moves_to(saga_step(&reserved, &pages()).unwrap()),
            (Status::Reserved, None)
        );
        let rejected = EventData::InventoryRejected(InventoryRejected {
            order_id: "o1".into(),
            reason: "2 of p available".into(),
        });
        assert_eq!(
            moves_to(saga_step(&rejected, &pages()).unwrap()),
            (
                Status::Cancelled,
                Some("out of stock: 2 of p available".into())
            )
        );
        let paid = EventData::PaymentSucceeded(payment(None, None));
        assert_eq!(
            moves_to(saga_step(&paid, &pages()).unwrap()),
            (Status::Paid, None)
        );
        let declined = EventData::PaymentFailed(payment(Some("card declined"), None));
        assert_eq!(
            moves_to(saga_step(&declined, &pages()).unwrap()),
            (
                Status::Cancelled,
                Some("payment declined: card declined".into())
            )
        );
        let refunded = EventData::PaymentRefunded(payment(Some("damaged"), None));
        assert_eq!(
            moves_to(saga_step(&refunded, &pages()).unwrap()),
            (Status::Refunded, Some("damaged".into()))
        );
    }

    #[test]
    fn a_payment_page_is_shown_and_other_events_are_not_followed() {
        let url = "https://pay.example/eng/process?m_payment_id=o1";
        let page = EventData::PaymentActionRequired(payment(None, Some(url)));
        assert_eq!(
            saga_step(&page, &pages()).unwrap(),
            Some(SagaStep::PaymentPage {
                order_id: "o1".into(),
                url: url.into()
            })
        );
        let elsewhere = EventData::PaymentActionRequired(payment(
            None,
            Some("https://phish.example/eng/process?m_payment_id=o1"),
        ));
        let refused = Problem::from(saga_step(&elsewhere, &pages()).unwrap_err());
        assert_eq!(refused.status, 422, "{refused:?}");
        assert_eq!(refused.errors[0].field, "redirect_url");
        let no_url = EventData::PaymentActionRequired(payment(None, None));
        assert!(matches!(
            saga_step(&no_url, &pages()),
            Err(DomainError::Invalid(_))
        ));
        let own = EventData::OrderShipped(OrderChanged {
            order_id: "o1".into(),
            user_id: "u1".into(),
            status: Status::Shipped,
            reason: None,
            total_minor: 100,
            currency: "EUR".into(),
        });
        assert_eq!(saga_step(&own, &pages()).unwrap(), None);
    }
}
