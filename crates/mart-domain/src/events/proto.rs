//! The Protobuf messages generated from `proto/` (at build time, by prost),
//! and the conversions between them and the domain's event data. A message
//! that decodes but breaks a rule of its type (an unknown status, a missing
//! part) is refused with the field it concerns.

use crate::catalog::{Product, ProductDeleted};
use crate::events::{InventoryChanged, InventoryRejected, ReservedLine, UserRegistered};
use crate::orders::{self, OrderChanged, OrderLine, OrderPlaced, PaymentMethod};
use crate::payments::{PaymentChanged, PaymentStatus, RefundDue};

/// `mart.events.v1`: one message per event type.
#[allow(clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mart.events.v1.rs"));
}

/// `io.cloudevents.v1`: the CloudEvents Protobuf format.
#[allow(clippy::all)]
pub mod cloudevents {
    include!(concat!(env!("OUT_DIR"), "/io.cloudevents.v1.rs"));
}

/// Why a message does not make an event of its type.
type Refusal = String;

fn required<T>(part: Option<T>, name: &str) -> Result<T, Refusal> {
    part.ok_or_else(|| format!("`{name}` is missing"))
}

impl From<&UserRegistered> for v1::UserRegistered {
    fn from(d: &UserRegistered) -> Self {
        Self {
            user_id: d.user_id.clone(),
            email: d.email.clone(),
            name: d.name.clone(),
        }
    }
}

impl TryFrom<v1::UserRegistered> for UserRegistered {
    type Error = Refusal;
    fn try_from(m: v1::UserRegistered) -> Result<Self, Refusal> {
        Ok(Self {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
        })
    }
}

impl From<&Product> for v1::Product {
    fn from(d: &Product) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            description: d.description.clone(),
            category: d.category.clone(),
            price_minor: d.price_minor,
            currency: d.currency.clone(),
            created_at: d.created_at.clone(),
            updated_at: d.updated_at.clone(),
            image_url: d.image_url.clone(),
        }
    }
}

impl TryFrom<v1::Product> for Product {
    type Error = Refusal;
    fn try_from(m: v1::Product) -> Result<Self, Refusal> {
        Ok(Self {
            id: m.id,
            name: m.name,
            description: m.description,
            category: m.category,
            price_minor: m.price_minor,
            currency: m.currency,
            created_at: m.created_at,
            updated_at: m.updated_at,
            image_url: m.image_url,
        })
    }
}

impl From<&ProductDeleted> for v1::ProductDeleted {
    fn from(d: &ProductDeleted) -> Self {
        Self {
            product_id: d.product_id.clone(),
        }
    }
}

impl TryFrom<v1::ProductDeleted> for ProductDeleted {
    type Error = Refusal;
    fn try_from(m: v1::ProductDeleted) -> Result<Self, Refusal> {
        Ok(Self {
            product_id: m.product_id,
        })
    }
}

fn order_status(status: orders::Status) -> v1::OrderStatus {
    use orders::Status::*;
    match status {
        Pending => v1::OrderStatus::Pending,
        Reserved => v1::OrderStatus::Reserved,
        Paid => v1::OrderStatus::Paid,
        Shipped => v1::OrderStatus::Shipped,
        Delivered => v1::OrderStatus::Delivered,
        Cancelled => v1::OrderStatus::Cancelled,
        Refunded => v1::OrderStatus::Refunded,
    }
}

fn order_status_from(value: i32) -> Result<orders::Status, Refusal> {
    use orders::Status::*;
    Ok(match v1::OrderStatus::try_from(value) {
        Ok(v1::OrderStatus::Pending) => Pending,
        Ok(v1::OrderStatus::Reserved) => Reserved,
        Ok(v1::OrderStatus::Paid) => Paid,
        Ok(v1::OrderStatus::Shipped) => Shipped,
        Ok(v1::OrderStatus::Delivered) => Delivered,
        Ok(v1::OrderStatus::Cancelled) => Cancelled,
        Ok(v1::OrderStatus::Refunded) => Refunded,
        Ok(v1::OrderStatus::Unspecified) | Err(_) => {
            return Err(format!("`status` {value} is not an order status"))
        }
    })
}

impl From<&OrderPlaced> for v1::OrderPlaced {
    fn from(d: &OrderPlaced) -> Self {
        Self {
            order_id: d.order_id.clone(),
            user_id: d.user_id.clone(),
            cart_id: d.cart_id.clone(),
            lines: d
                .lines
                .iter()
                .map(|l| v1::OrderLine {
                    product_id: l.product_id.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                })
                .collect(),
            total_minor: d.total_minor,
            currency: d.currency.clone(),
            payment: Some(v1::PaymentMethod {
                provider: d.payment.provider.clone(),
                token: d.payment.token.clone(),
            }),
        }
    }
}

impl TryFrom<v1::OrderPlaced> for OrderPlaced {
    type Error = Refusal;
    fn try_from(m: v1::OrderPlaced) -> Result<Self, Refusal> {
        let payment = required(m.payment, "payment")?;
        Ok(Self {
            order_id: m.order_id,
            user_id: m.user_id,
            cart_id: m.cart_id,
            lines: m
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    product_id: l.product_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                })
                .collect(),
            total_minor: m.total_minor,
            currency: m.currency,
            payment: PaymentMethod {
                provider: payment.provider,
                token: payment.token,
            },
        })
    }
}

impl From<&OrderChanged> for v1::OrderChanged {
    fn from(d: &OrderChanged) -> Self {
        Self {
            order_id: d.order_id.clone(),
            user_id: d.user_id.clone(),
            status: order_status(d.status).into(),
            reason: d.reason.clone(),
            total_minor: d.total_minor,
            currency: d.currency.clone(),
        }
    }
}

impl TryFrom<v1::OrderChanged> for OrderChanged {
    type Error = Refusal;
    fn try_from(m: v1::OrderChanged) -> Result<Self, Refusal> {
        Ok(Self {
            status: order_status_from(m.status)?,
            order_id: m.order_id,
            user_id: m.user_id,
            reason: m.reason,
            total_minor: m.total_minor,
            currency: m.currency,
        })
    }
}

impl From<&InventoryChanged> for v1::InventoryChanged {
    fn from(d: &InventoryChanged) -> Self {
        Self {
            order_id: d.order_id.clone(),
            status: d.status.clone(),
            lines: d
                .lines
                .iter()
                .map(|l| v1::ReservedLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        }
    }
}

impl TryFrom<v1::InventoryChanged> for InventoryChanged {
    type Error = Refusal;
    fn try_from(m: v1::InventoryChanged) -> Result<Self, Refusal> {
        Ok(Self {
            order_id: m.order_id,
            status: m.status,
            lines: m
                .lines
                .into_iter()
                .map(|l| ReservedLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                })
                .collect(),
        })
    }
}

impl From<&InventoryRejected> for v1::InventoryRejected {
    fn from(d: &InventoryRejected) -> Self {
        Self {
            order_id: d.order_id.clone(),
            reason: d.reason.clone(),
        }
    }
}

impl TryFrom<v1::InventoryRejected> for InventoryRejected {
    type Error = Refusal;
    fn try_from(m: v1::InventoryRejected) -> Result<Self, Refusal> {
        Ok(Self {
            order_id: m.order_id,
            reason: m.reason,
        })
    }
}

fn payment_status(status: PaymentStatus) -> v1::PaymentStatus {
    match status {
        PaymentStatus::Pending => v1::PaymentStatus::Pending,
        PaymentStatus::Succeeded => v1::PaymentStatus::Succeeded,
        PaymentStatus::Failed => v1::PaymentStatus::Failed,
        PaymentStatus::Refunded => v1::PaymentStatus::Refunded,
        PaymentStatus::Cancelled => v1::PaymentStatus::Cancelled,
    }
}

fn payment_status_from(value: i32) -> Result<PaymentStatus, Refusal> {
    Ok(match v1::PaymentStatus::try_from(value) {
        Ok(v1::PaymentStatus::Pending) => PaymentStatus::Pending,
        Ok(v1::PaymentStatus::Succeeded) => PaymentStatus::Succeeded,
        Ok(v1::PaymentStatus::Failed) => PaymentStatus::Failed,
        Ok(v1::PaymentStatus::Refunded) => PaymentStatus::Refunded,
        Ok(v1::PaymentStatus::Cancelled) => PaymentStatus::Cancelled,
        Ok(v1::PaymentStatus::Unspecified) | Err(_) => {
            return Err(format!("`status` {value} is not a payment status"))
        }
    })
}

impl From<&PaymentChanged> for v1::PaymentChanged {
    fn from(d: &PaymentChanged) -> Self {
        Self {
            payment_id: d.payment_id.clone(),
            order_id: d.order_id.clone(),
            user_id: d.user_id.clone(),
            status: payment_status(d.status).into(),
            amount_minor: d.amount_minor,
            currency: d.currency.clone(),
            reason: d.reason.clone(),
            redirect_url: d.redirect_url.clone(),
        }
    }
}

impl TryFrom<v1::PaymentChanged> for PaymentChanged {
    type Error = Refusal;
    fn try_from(m: v1::PaymentChanged) -> Result<Self, Refusal> {
        Ok(Self {
            status: payment_status_from(m.status)?,
            payment_id: m.payment_id,
            order_id: m.order_id,
            user_id: m.user_id,
            amount_minor: m.amount_minor,
            currency: m.currency,
            reason: m.reason,
            redirect_url: m.redirect_url,
        })
    }
}

impl From<&RefundDue> for v1::PaymentRefundDue {
    fn from(d: &RefundDue) -> Self {
        Self {
            order_id: d.order_id.clone(),
            provider: d.provider.clone(),
            reference: d.reference.clone(),
            amount_minor: d.amount_minor,
            reason: d.reason.clone(),
        }
    }
}

impl TryFrom<v1::PaymentRefundDue> for RefundDue {
    type Error = Refusal;
    fn try_from(m: v1::PaymentRefundDue) -> Result<Self, Refusal> {
        Ok(Self {
            order_id: m.order_id,
            provider: m.provider,
            reference: m.reference,
            amount_minor: m.amount_minor,
            reason: m.reason,
        })
    }
}

/// Event types whose data has the shape of another message: the type's own
/// message wraps that one in `$field`, so each type keeps its own name (and
/// type URL) without repeating the fields.
macro_rules! wrapped {
    ($($message:ident { $field:ident: $inner:ident } as $data:ty;)*) => {$(
        impl From<&$data> for v1::$message {
            fn from(d: &$data) -> Self {
                Self { $field: Some(v1::$inner::from(d)) }
            }
        }

        impl TryFrom<v1::$message> for $data {
            type Error = Refusal;
            fn try_from(m: v1::$message) -> Result<Self, Refusal> {
                <$data>::try_from(required(m.$field, stringify!($field))?)
            }
        }
    )*};
}

wrapped! {
    ProductCreated { product: Product } as Product;
    ProductUpdated { product: Product } as Product;
    OrderPaid { order: OrderChanged } as OrderChanged;
    OrderCancelled { order: OrderChanged } as OrderChanged;
    OrderShipped { order: OrderChanged } as OrderChanged;
    OrderDelivered { order: OrderChanged } as OrderChanged;
    OrderRefunded { order: OrderChanged } as OrderChanged;
    InventoryReserved { reservation: InventoryChanged } as InventoryChanged;
    InventoryReleased { reservation: InventoryChanged } as InventoryChanged;
    InventoryCommitted { reservation: InventoryChanged } as InventoryChanged;
    PaymentSucceeded { payment: PaymentChanged } as PaymentChanged;
    PaymentFailed { payment: PaymentChanged } as PaymentChanged;
    PaymentRefunded { payment: PaymentChanged } as PaymentChanged;
    PaymentActionRequired { payment: PaymentChanged } as PaymentChanged;
}
