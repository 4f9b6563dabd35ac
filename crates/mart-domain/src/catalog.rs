//! Product rules: what a valid product is.

use serde::{Deserialize, Serialize};

use crate::{DomainError, FieldError};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Ten billion in minor units: far above any real shop item, far below i64 overflow
/// when multiplied by a cart quantity.
pub const MAX_PRICE_MINOR: i64 = 10_000_000_000;

/// The body of `POST /products` and `PUT /products/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: Option<String>,
    pub price_minor: i64,
    pub currency: String,
}

/// A product that passed validation, normalised (trimmed names, etc.).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidProduct {
    pub name: String,
    pub description: String,
    pub category: Option<String>,
    pub price_minor: i64,
    pub currency: String,
}

/// A product as the API shows it; also the data of `product.created` and
/// `product.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

/// `product.deleted`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDeleted {
    pub product_id: String,
}

/// Checks every field, reporting all problems at once. `shop_currency` is the
/// one currency the shop sells in, so cart totals never mix currencies.
pub fn validate(input: ProductInput, shop_currency: &str) -> Result<ValidProduct, DomainError> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_string();
    if name.is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let description = input.description.trim().to_string();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let category = input.category.map(|c| c.trim().to_string());
    if let Some(category) = &category {
        if let Err(message) = check_category(category) {
            errors.push(FieldError::new("category", message));
        }
    }
    if input.price_minor < 0 {
        errors.push(FieldError::new("price_minor", "must not be negative"));
    } else if input.price_minor > MAX_PRICE_MINOR {
        errors.push(FieldError::new(
            "price_minor",
            format!("must be at most {MAX_PRICE_MINOR}"),
        ));
    }
    if !is_currency_code(&input.currency) {
        errors.push(FieldError::new(
            "currency",
            "must be an ISO 4217 code such as \"EUR\"",
        ));
    } else if input.currency != shop_currency {
        errors.push(FieldError::new(
            "currency",
            format!("the shop sells in {shop_currency} only"),
        ));
    }
    if !errors.is_empty() {
        return Err(DomainError::Invalid(errors));
    }
    Ok(ValidProduct {
        name,
        description,
        category,
        price_minor: input.price_minor,
        currency: input.currency,
    })
}

/// Categories are slugs: `kitchen`, `home-office`.
pub fn check_category(category: &str) -> Result<(), String> {
    let ok = (1..=50).contains(&category.len())
        && category.split('-').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err("must be a lower-case slug such as \"home-office\" (at most 50 characters)".into())
    }
}

pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Problem;

    fn input() -> ProductInput {
        ProductInput {
            name: "  Blue mug ".into(),
            description: "Holds tea.".into(),
            category: Some("kitchen".into()),
            price_minor: 1299,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn valid_product_is_normalised() {
        let p = validate(input(), "EUR").unwrap();
        assert_eq!(p.name, "Blue mug");
        assert_eq!(p.price_minor, 1299);
    }

    #[test]
    fn reports_every_bad_field() {
        let bad = ProductInput {
            name: " ".into(),
            description: "x".repeat(MAX_DESCRIPTION_CHARS + 1),
            category: Some("Home Office".into()),
            price_minor: -1,
            currency: "eur".into(),
        };
        let p = validate(bad, "EUR").map_err(Problem::from).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "description", "category", "price_minor", "currency"]
        );
        assert_eq!(p.status, 422);
    }

    #[test]
    fn other_currency_and_huge_price_are_refused() {
        let mut i = input();
        i.currency = "USD".into();
        assert!(validate(i, "EUR")
            .map_err(Problem::from)
            .unwrap_err()
            .detail
            .contains("EUR only"));
        let mut i = input();
        i.price_minor = MAX_PRICE_MINOR + 1;
        assert_eq!(
            validate(i, "EUR")
                .map_err(Problem::from)
                .unwrap_err()
                .errors[0]
                .field,
            "price_minor"
        );
        let mut i = input();
        i.price_minor = 0;
        assert!(validate(i, "EUR").is_ok(), "free items are allowed");
    }

    #[test]
    fn category_slugs() {
        for ok in ["kitchen", "home-office", "a1"] {
            check_category(ok).unwrap();
        }
        for bad in ["", "Kitchen", "home--office", "-a", "a b", &"a".repeat(51)] {
            assert!(check_category(bad).is_err(), "{bad}");
        }
    }
}
