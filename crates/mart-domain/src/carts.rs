//! Cart rules: quantities, line and cart totals in minor units.

use serde::{Deserialize, Serialize};

use crate::{DomainError, FieldError};

/// Most units of one product in one cart.
pub const MAX_QUANTITY: i32 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub product_id: String,
    pub quantity: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    pub quantity: i32,
}

pub fn check_quantity(quantity: i32) -> Result<(), DomainError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(DomainError::Invalid(vec![FieldError::new(
            "quantity",
            format!("must be from 1 to {MAX_QUANTITY} (remove a line with DELETE)"),
        )]))
    }
}

/// A line as the cart shows it: the price is the catalog's at the time the
/// line was last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub product_id: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

impl Line {
    pub fn new(product_id: String, name: String, quantity: i32, unit_price_minor: i64) -> Self {
        // Bounded by MAX_QUANTITY and catalog::MAX_PRICE_MINOR: no overflow.
        let line_total_minor = unit_price_minor * i64::from(quantity);
        Self {
            product_id,
            name,
            quantity,
            unit_price_minor,
            line_total_minor,
        }
    }
}

pub fn total_minor(lines: &[Line]) -> i64 {
    lines.iter().map(|l| l.line_total_minor).sum()
}

/// The quantity after adding `more` to `existing`, within the limit.
pub fn added_quantity(existing: i32, more: i32) -> Result<i32, DomainError> {
    check_quantity(more)?;
    let total = existing.saturating_add(more);
    if total > MAX_QUANTITY {
        return Err(DomainError::Invalid(vec![FieldError::new(
            "quantity",
            format!("the cart would hold {total}; at most {MAX_QUANTITY} of one product"),
        )]));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals() {
        let lines = vec![
            Line::new("a".into(), "Mug".into(), 2, 1299),
            Line::new("b".into(), "Pot".into(), 1, 650),
        ];
        assert_eq!(lines[0].line_total_minor, 2598);
        assert_eq!(total_minor(&lines), 3248);
        assert_eq!(total_minor(&[]), 0);
        let max = Line::new(
            "c".into(),
            "Gold".into(),
            MAX_QUANTITY,
            crate::catalog::MAX_PRICE_MINOR,
        );
        assert_eq!(max.line_total_minor, 10_000_000_000_000);
    }

    #[test]
    fn quantities() {
        assert!(check_quantity(0).is_err());
        assert!(check_quantity(-1).is_err());
        assert!(check_quantity(MAX_QUANTITY + 1).is_err());
        assert_eq!(added_quantity(2, 3).unwrap(), 5);
        assert!(added_quantity(MAX_QUANTITY, 1).is_err());
        assert!(added_quantity(1, i32::MAX).is_err());
    }
}
