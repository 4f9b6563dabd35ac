//! A realistic event of every type, as the services write them: for the
//! format tests here and `make bench` (feature `samples`).

use super::{
    EventData, EventType, InventoryChanged, InventoryRejected, ReservedLine, UserRegistered,
};
use crate::catalog::{Product, ProductDeleted};
use crate::events::Envelope;
use crate::orders::{OrderChanged, OrderLine, OrderPlaced, PaymentMethod, Status};
use crate::payments::{PaymentChanged, PaymentStatus, RefundDue};

const ORDER: &str = "5b0e4c1e-3f7a-4c2b-9d7e-2a6f0c8b1d43";
const USER: &str = "9f1c2d3e-4b5a-4697-8877-665544332211";
const PRODUCT: &str = "0d9e8f7a-6b5c-4d3e-a2f1-0e9d8c7b6a59";

/// The data of a typical `kind` event.
pub fn data(kind: EventType) -> EventData {
    match kind {
        EventType::UserRegistered => EventData::UserRegistered(UserRegistered {
            user_id: USER.into(),
            email: "ada@example.com".into(),
            name: "Ada Lovelace".into(),
        }),
        EventType::ProductCreated => EventData::ProductCreated(product()),
        EventType::ProductUpdated => EventData::ProductUpdated(Product {
            category: None,
            image_url: None,
            ..product()
        }),
        EventType::ProductDeleted => EventData::ProductDeleted(ProductDeleted {
            product_id: PRODUCT.into(),
        }),
        EventType::OrderPlaced => EventData::OrderPlaced(OrderPlaced {
            order_id: ORDER.into(),
            user_id: USER.into(),
            cart_id: Some("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".into()),
            lines: vec![
                OrderLine {
                    product_id: PRODUCT.into(),
                    name: "Brown Betty teapot".into(),
                    quantity: 1,
                    unit_price_minor: 2500,
                },
                OrderLine {
                    product_id: "7c6b5a49-3827-4165-9f0e-d1c2b3a49586".into(),
                    name: "Cup".into(),
                    quantity: 4,
                    unit_price_minor: 400,
                },
            ],
            total_minor: 4100,
            currency: "EUR".into(),
            payment: PaymentMethod {
                provider: "fake".into(),
                token: "tok_visa".into(),
            },
        }),
        EventType::OrderPaid => EventData::OrderPaid(order(Status::Paid, None)),
        EventType::OrderCancelled => EventData::OrderCancelled(order(
            Status::Cancelled,
            Some("not enough stock of 0d9e8f7a-6b5c-4d3e-a2f1-0e9d8c7b6a59"),
        )),
        EventType::OrderShipped => EventData::OrderShipped(order(Status::Shipped, None)),
        EventType::OrderDelivered => EventData::OrderDelivered(order(Status::Delivered, None)),
        EventType::OrderRefunded => {
            EventData::OrderRefunded(order(Status::Refunded, Some("returned")))
        }
        EventType::InventoryReserved => EventData::InventoryReserved(reservation("reserved")),
        EventType::InventoryRejected => EventData::InventoryRejected(InventoryRejected {
            order_id: ORDER.into(),
            reason: "not enough stock of 0d9e8f7a-6b5c-4d3e-a2f1-0e9d8c7b6a59".into(),
        }),
        EventType::InventoryReleased => EventData::InventoryReleased(reservation("released")),
        EventType::InventoryCommitted => EventData::InventoryCommitted(reservation("committed")),
        EventType::PaymentSucceeded => {
            EventData::PaymentSucceeded(payment(PaymentStatus::Succeeded, None, None))
        }
        EventType::PaymentFailed => EventData::PaymentFailed(payment(
            PaymentStatus::Failed,
            Some("card_declined: Your card was declined."),
            None,
        )),
        EventType::PaymentRefunded => {
            EventData::PaymentRefunded(payment(PaymentStatus::Refunded, Some("returned"), None))
        }
        EventType::PaymentActionRequired => EventData::PaymentActionRequired(payment(
            PaymentStatus::Pending,
            None,
            Some("https://sandbox.payfast.co.za/eng/process?m_payment_id=5b0e4c1e"),
        )),
        EventType::PaymentRefundDue => EventData::PaymentRefundDue(RefundDue {
            order_id: ORDER.into(),
            provider: "stripe".into(),
            reference: "pi_3QZ5x2LkdIwHu7ix0aBcDeFg".into(),
            amount_minor: 4100,
            reason: "a second payment for an order already paid".into(),
        }),
    }
}

/// A `kind` event as the outbox relay reads it (JSON data).
pub fn envelope(kind: EventType) -> Envelope {
    Envelope {
        id: "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7".into(),
        event_type: kind.as_str().into(),
        source: format!("/mart/{}", kind.aggregate()),
        time: "2026-12-07T09:30:12.345678Z".into(),
        subject: ORDER.into(),
        data: serde_json::to_vec(&data(kind).to_json()).expect("plain data"),
    }
}

fn product() -> Product {
    Product {
        id: PRODUCT.into(),
        name: "Brown Betty teapot".into(),
        description: "A six-cup teapot of red Stoke-on-Trent clay.".into(),
        category: Some("kitchen".into()),
        price_minor: 2500,
        currency: "EUR".into(),
        image_url: Some("/shop/images/teapot.svg".into()),
        created_at: "2026-12-01T08:00:00.000000Z".into(),
        updated_at: "2026-12-07T09:30:12.345678Z".into(),
    }
}

fn order(status: Status, reason: Option<&str>) -> OrderChanged {
    OrderChanged {
        order_id: ORDER.into(),
        user_id: USER.into(),
        status,
        reason: reason.map(Into::into),
        total_minor: 4100,
        currency: "EUR".into(),
    }
}

fn reservation(status: &str) -> InventoryChanged {
    InventoryChanged {
        order_id: ORDER.into(),
        status: status.into(),
        lines: vec![
            ReservedLine {
                product_id: PRODUCT.into(),
                quantity: 1,
            },
            ReservedLine {
                product_id: "7c6b5a49-3827-4165-9f0e-d1c2b3a49586".into(),
                quantity: 4,
            },
        ],
    }
}

fn payment(
    status: PaymentStatus,
    reason: Option<&str>,
    redirect_url: Option<&str>,
) -> PaymentChanged {
    PaymentChanged {
        payment_id: "c0ffee00-1234-4abc-8def-0123456789ab".into(),
        order_id: ORDER.into(),
        user_id: USER.into(),
        status,
        amount_minor: 4100,
        currency: "EUR".into(),
        reason: reason.map(Into::into),
        redirect_url: redirect_url.map(Into::into),
    }
}
