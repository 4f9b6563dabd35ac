//! What a customer is told, and when: the notifications service's messages,
//! rendered from the events it follows (its handler stores and sends them).

use crate::events::{EventData, UserRegistered};
use crate::orders::OrderChanged;

/// A message for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub user_id: String,
    pub kind: &'static str,
    pub subject: String,
    pub body: String,
    /// The body as the host's log may show it (the `log` channel): the
    /// recipient's name and address redacted (`redact_name`,
    /// `redact_email`). Logs are kept, shipped and read by operators; the
    /// full text goes only to the recipient (and their own list).
    pub log_body: String,
}

/// The message for `event`, if it is one a customer hears about.
pub fn note_for(event: &EventData) -> Option<Note> {
    match event {
        EventData::UserRegistered(user) => Some(welcome(user)),
        EventData::OrderPaid(order) => Some(about_order(order, "order_paid", |short, total| {
            (
                format!("Order {short} is paid"),
                format!("We received your payment of {total}; your order is being prepared."),
            )
        })),
        EventData::OrderCancelled(order) => {
            let reason = order.reason.as_deref().unwrap_or("no reason given");
            Some(about_order(order, "order_cancelled", |short, total| {
                (
                    format!("Order {short} was cancelled"),
                    format!("Your order of {total} was cancelled: {reason}."),
                )
            }))
        }
        EventData::OrderRefunded(order) => {
            Some(about_order(order, "order_refunded", |short, total| {
                (
                    format!("Order {short} was refunded"),
                    format!("We refunded {total} to your original payment method."),
                )
            }))
        }
        EventData::OrderShipped(order) => Some(about_order(order, "order_shipped", |short, _| {
            (
                format!("Order {short} is on its way"),
                "Your order was shipped.".to_string(),
            )
        })),
        _ => None,
    }
}

fn welcome(user: &UserRegistered) -> Note {
    let body = |name: &str, email: &str| format!("Hello {name}, your account {email} is ready.");
    Note {
        user_id: user.user_id.clone(),
        kind: "welcome",
        subject: "Welcome to Mart".into(),
        body: body(&user.name, &user.email),
        log_body: body(&redact_name(&user.name), &redact_email(&user.email)),
    }
}

/// An address as a log may show it: the local part's first character and
/// the domain, `j***@example.com`; `***` for anything without an `@`.
pub fn redact_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => match local.chars().next() {
            Some(first) => format!("{first}***@{domain}"),
            None => format!("***@{domain}"),
        },
        None => "***".into(),
    }
}

/// A name as a log may show it: its words' initials, `Ada Lovelace` ->
/// `A. L.`; `***` for a name with no letters.
pub fn redact_name(name: &str) -> String {
    let initials: Vec<String> = name
        .split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .map(|c| format!("{c}."))
        .collect();
    if initials.is_empty() {
        "***".into()
    } else {
        initials.join(" ")
    }
}

/// A note about `order`; `text` gets the order's short id and its total.
fn about_order(
    order: &OrderChanged,
    kind: &'static str,
    text: impl FnOnce(&str, &str) -> (String, String),
) -> Note {
    // The id's first 8 characters, however short or odd the id is.
    let short: String = order.order_id.chars().take(8).collect();
    let (subject, body) = text(&short, &money(order.total_minor, &order.currency));
    Note {
        user_id: order.user_id.clone(),
        kind,
        subject,
        // An order's note names no person: ids, totals and the reason.
        log_body: body.clone(),
        body,
    }
}

/// An amount in minor units with two decimals, e.g. `12.05 EUR`.
fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Status;

    fn order(id: &str, reason: Option<&str>) -> OrderChanged {
        OrderChanged {
            order_id: id.into(),
            user_id: "u1".into(),
            status: Status::Paid,
            reason: reason.map(str::to_string),
            total_minor: 1205,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn customers_hear_of_their_orders_with_short_ids_and_totals() {
        let id = "0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10";
        let paid = note_for(&EventData::OrderPaid(order(id, None))).unwrap();
        assert_eq!(paid.user_id, "u1");
        assert_eq!(paid.kind, "order_paid");
        assert_eq!(paid.subject, "Order 0b7c6f0e is paid");
        assert!(paid.body.contains("12.05 EUR"), "{}", paid.body);
        let cancelled =
            note_for(&EventData::OrderCancelled(order(id, Some("out of stock")))).unwrap();
        assert_eq!(
            cancelled.body,
            "Your order of 12.05 EUR was cancelled: out of stock."
        );
        let no_reason = note_for(&EventData::OrderCancelled(order(id, None))).unwrap();
        assert!(no_reason.body.ends_with("no reason given."));
        assert_eq!(
            note_for(&EventData::OrderShipped(order(id, None)))
                .unwrap()
                .kind,
            "order_shipped"
        );
        assert_eq!(
            note_for(&EventData::OrderRefunded(order(id, None)))
                .unwrap()
                .kind,
            "order_refunded"
        );
    }

    #[test]
    fn an_odd_order_id_is_no_reason_to_fail() {
        let note = note_for(&EventData::OrderPaid(order("é1", None))).unwrap();
        assert_eq!(note.subject, "Order é1 is paid");
    }

    #[test]
    fn names_and_addresses_are_redacted_for_logs() {
        assert_eq!(redact_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(redact_email("@example.com"), "***@example.com");
        assert_eq!(redact_email("not an address"), "***");
        assert_eq!(redact_name("Ada Lovelace"), "A. L.");
        assert_eq!(redact_name("  élodie  "), "é.");
        assert_eq!(redact_name(" - "), "***");
    }

    #[test]
    fn a_new_account_is_welcomed_and_other_events_say_nothing() {
        let user = UserRegistered {
            user_id: "u2".into(),
            email: "a@b.co".into(),
            name: "Ada".into(),
        };
        let note = note_for(&EventData::UserRegistered(user)).unwrap();
        assert_eq!(note.kind, "welcome");
        assert_eq!(note.body, "Hello Ada, your account a@b.co is ready.");
        assert_eq!(note.log_body, "Hello A., your account a***@b.co is ready.");
        assert_eq!(
            note_for(&EventData::OrderDelivered(order("o1", None))),
            None
        );
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
    }
}
