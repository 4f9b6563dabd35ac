//! Stock rules. `available = on_hand - reserved`, never negative; the
//! database enforces the same with CHECK constraints.

use serde::{Deserialize, Serialize};

use crate::{DomainError, FieldError};

/// Far above any real shelf, far below i32 overflow when added up.
pub const MAX_QUANTITY: i32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stock {
    pub on_hand: i32,
    pub reserved: i32,
}

impl Stock {
    pub fn available(&self) -> i32 {
        self.on_hand - self.reserved
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    pub on_hand: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    pub delta: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub product_id: String,
    pub quantity: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    pub order_id: String,
    pub lines: Vec<Line>,
}

pub fn validate_set(input: &SetStock) -> Result<(), DomainError> {
    if !(0..=MAX_QUANTITY).contains(&input.on_hand) {
        return Err(DomainError::Invalid(vec![FieldError::new(
            "on_hand",
            format!("must be from 0 to {MAX_QUANTITY}"),
        )]));
    }
    Ok(())
}

pub fn validate_adjustment(input: &Adjustment) -> Result<String, DomainError> {
    let mut errors = Vec::new();
    if input.delta == 0 || input.delta.abs() > MAX_QUANTITY {
        errors.push(FieldError::new(
            "delta",
            format!("must be non-zero and at most {MAX_QUANTITY} either way"),
        ));
    }
    let reason = input.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 200 {
        errors.push(FieldError::new("reason", "must be 1 to 200 characters"));
    }
    if errors.is_empty() {
        Ok(reason)
    } else {
        Err(DomainError::Invalid(errors))
    }
}

/// Checks a reservation's lines and merges repeated products, returning them
/// sorted by product id: every transaction locks rows in the same order, so
/// concurrent reservations cannot deadlock.
pub fn normalise_lines(
    lines: &[Line],
    is_id: impl Fn(&str) -> bool,
) -> Result<Vec<Line>, DomainError> {
    let mut errors = Vec::new();
    if lines.is_empty() || lines.len() > 100 {
        errors.push(FieldError::new("lines", "must have 1 to 100 lines"));
    }
    let mut merged: Vec<Line> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let id = line.product_id.to_ascii_lowercase();
        if !is_id(&id) {
            errors.push(FieldError::new(
                format!("lines[{i}].product_id"),
                "must be a product id (UUID)",
            ));
            continue;
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                format!("must be from 1 to {MAX_QUANTITY}"),
            ));
            continue;
        }
        match merged.iter_mut().find(|l| l.product_id == id) {
            Some(existing) => {
                existing.quantity = existing
                    .quantity
                    .saturating_add(line.quantity)
                    .min(MAX_QUANTITY + 1)
            }
            None => merged.push(Line {
                product_id: id,
                quantity: line.quantity,
            }),
        }
    }
    if let Some(line) = merged.iter().find(|l| l.quantity > MAX_QUANTITY) {
        errors.push(FieldError::new(
            "lines",
            format!(
                "product {} adds up to more than {MAX_QUANTITY}",
                line.product_id
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(DomainError::Invalid(errors));
    }
    merged.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    Ok(merged)
}

/// Where an order's reservation stands (all its lines move together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Reserved,
    /// Paid: the units left the shelf.
    Committed,
    /// Cancelled before payment: the units are free again.
    Released,
    /// Refunded after payment: the units are back on the shelf.
    Returned,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "reserved",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
            ReservationStatus::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ReservationStatus::Reserved,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Returned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The steps a reservation takes after it was made, one per saga event:
/// `order.paid` commits it, `order.cancelled` releases it,
/// `order.refunded` returns its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStep {
    Commit,
    Release,
    Return,
}

/// What a step does when no line of the order's reservation was where it
/// starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NothingMoved {
    /// The step was taken before (a repeated event or request).
    AlreadyDone,
    /// The reservation went another way (a cancel after the commit).
    Refused(String),
}

impl ReservationStep {
    pub fn from(self) -> ReservationStatus {
        match self {
            ReservationStep::Commit | ReservationStep::Release => ReservationStatus::Reserved,
            ReservationStep::Return => ReservationStatus::Committed,
        }
    }

    pub fn to(self) -> ReservationStatus {
        match self {
            ReservationStep::Commit => ReservationStatus::Committed,
            ReservationStep::Release => ReservationStatus::Released,
            ReservationStep::Return => ReservationStatus::Returned,
        }
    }

    /// How a product's `on_hand` and `reserved` change per unit moved.
    pub fn stock_change(self) -> (i32, i32) {
        match self {
            ReservationStep::Commit => (-1, -1),
            ReservationStep::Release => (0, -1),
            ReservationStep::Return => (1, 0),
        }
    }

    /// The step when none of `order`'s lines was in `from()`: its
    /// reservation is now `current` (`None`: it has none, e.g. an order
    /// rejected for want of stock).
    pub fn when_nothing_moved(
        self,
        order: &str,
        current: Option<ReservationStatus>,
    ) -> Result<NothingMoved, DomainError> {
        match current {
            None => Err(DomainError::not_found(format!(
                "no reservation for order {order}"
            ))),
            Some(status) if status == self.to() => Ok(NothingMoved::AlreadyDone),
            Some(status) => Ok(NothingMoved::Refused(format!(
                "the reservation for order {order} is {}, so it cannot become {}",
                status.as_str(),
                self.to().as_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, quantity: i32) -> Line {
        Line {
            product_id: id.into(),
            quantity,
        }
    }

    #[test]
    fn available_is_on_hand_minus_reserved() {
        assert_eq!(
            Stock {
                on_hand: 10,
                reserved: 3
            }
            .available(),
            7
        );
    }

    #[test]
    fn lines_are_merged_sorted_and_checked() {
        let ok = normalise_lines(&[line("b", 2), line("A", 1), line("b", 3)], |_| true).unwrap();
        assert_eq!(ok, vec![line("a", 1), line("b", 5)]);
        let bad = normalise_lines(
            &[line("a", 0), line("b", -1), line("c", MAX_QUANTITY + 1)],
            |_| true,
        )
        .unwrap_err();
        let DomainError::Invalid(errors) = bad else {
            panic!("{bad:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "lines[0].quantity",
                "lines[1].quantity",
                "lines[2].quantity"
            ]
        );
        assert!(normalise_lines(&[], |_| true).is_err());
        assert_eq!(
            normalise_lines(&[line("x", 1)], |_| false).unwrap_err(),
            DomainError::invalid("lines[0].product_id", "must be a product id (UUID)")
        );
        let too_much = normalise_lines(&[line("a", MAX_QUANTITY), line("a", MAX_QUANTITY)], |_| {
            true
        })
        .unwrap_err();
        assert!(too_much.to_string().contains("adds up"), "{too_much}");
    }

    #[test]
    fn adjustments_need_a_reason_and_a_bounded_delta() {
        assert_eq!(
            validate_adjustment(&Adjustment {
                delta: -2,
                reason: " damaged ".into()
            })
            .unwrap(),
            "damaged"
        );
        assert!(validate_adjustment(&Adjustment {
            delta: 0,
            reason: "x".into()
        })
        .is_err());
        assert!(validate_adjustment(&Adjustment {
            delta: 5,
            reason: " ".into()
        })
        .is_err());
        assert!(validate_set(&SetStock { on_hand: -1 }).is_err());
        assert!(validate_set(&SetStock { on_hand: 0 }).is_ok());
    }

    #[test]
    fn a_reservation_is_committed_released_or_returned_once() {
        use ReservationStatus::*;
        use ReservationStep::*;
        assert_eq!((Commit.from(), Commit.to()), (Reserved, Committed));
        assert_eq!((Release.from(), Release.to()), (Reserved, Released));
        assert_eq!((Return.from(), Return.to()), (Committed, Returned));
        // Paid: the units leave; cancelled: they are free; refunded: back.
        assert_eq!(Commit.stock_change(), (-1, -1));
        assert_eq!(Release.stock_change(), (0, -1));
        assert_eq!(Return.stock_change(), (1, 0));
        // A repeated event finds its step taken.
        assert_eq!(
            Commit.when_nothing_moved("o1", Some(Committed)),
            Ok(NothingMoved::AlreadyDone)
        );
        // A cancel after the payment committed the stock moves nothing.
        let refused = Release.when_nothing_moved("o1", Some(Committed)).unwrap();
        assert_eq!(
            refused,
            NothingMoved::Refused(
                "the reservation for order o1 is committed, so it cannot become released".into()
            )
        );
        // A refund of an order whose stock was never committed returns nothing.
        assert!(matches!(
            Return.when_nothing_moved("o1", Some(Released)),
            Ok(NothingMoved::Refused(_))
        ));
        // An order rejected for want of stock has no reservation at all.
        assert!(matches!(
            Release.when_nothing_moved("o1", None),
            Err(DomainError::NotFound(_))
        ));
        for status in [Reserved, Committed, Released, Returned] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
    }
}
