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
    /// A picture of it: `https://…`, or a path on this site (`/shop/images/mug.svg`).
    #[serde(default)]
    pub image_url: Option<String>,
}

/// A product that passed validation, normalised (trimmed names, etc.).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidProduct {
    pub name: String,
    pub description: String,
    pub category: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub image_url: Option<String>,
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
    /// `null` for none (the storefront shows a placeholder).
    #[serde(default)]
    pub image_url: Option<String>,
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
    // Empty means none (a form's blank field).
    let image_url = input.image_url.filter(|u| !u.is_empty());
    if let Some(url) = &image_url {
        if let Err(message) = check_image_url(url) {
            errors.push(FieldError::new("image_url", message));
        }
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
        image_url,
    })
}

pub const MAX_IMAGE_URL_BYTES: usize = 2048;

/// An image URL a page can show safely: an `https://` URL with a host, or
/// a path on this site (`/shop/images/mug.svg`), in printable ASCII
/// without spaces, quotes, angle brackets or backslashes (anything else is
/// percent-encoded in a URL). So nothing that runs or embeds
/// (`javascript:`, `data:`), nothing in plain HTTP, no credentials, no
/// protocol-relative `//host`. The API document's pattern says the same.
pub fn check_image_url(url: &str) -> Result<(), String> {
    let refused = "must be an https:// URL or a path on this site such as \
                   \"/shop/images/mug.svg\"";
    if url.len() > MAX_IMAGE_URL_BYTES {
        return Err(format!("must be at most {MAX_IMAGE_URL_BYTES} characters"));
    }
    let plain = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\');
    if !url.chars().all(plain) {
        return Err(format!(
            "{refused}: printable ASCII without spaces, quotes, angle brackets or \
             backslashes (percent-encode the rest)"
        ));
    }
    let site_path = url.starts_with('/') && !url.starts_with("//");
    let https_host = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .is_some_and(|host| !host.is_empty() && !host.contains('@'));
    if site_path || https_host {
        Ok(())
    } else {
        Err(refused.into())
    }
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
            image_url: Some("/shop/images/mug.svg".into()),
        }
    }

    #[test]
    fn image_urls_are_https_or_paths_on_this_site() {
        for good in [
            "/shop/images/mug.svg",
            "https://cdn.example.com/p/mug.jpg?w=640",
        ] {
            assert_eq!(check_image_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://cdn.example.com/mug.jpg",
            "javascript:alert(1)",
            "data:image/svg+xml,<svg/>",
            "//cdn.example.com/mug.jpg",
            "https:///mug.jpg",
            "https://user@evil.example/mug.jpg",
            "/shop/images/a mug.svg",
            "/x\"onerror=\"alert(1)",
            "mug.svg",
        ] {
            assert!(check_image_url(bad).is_err(), "{bad}");
        }
        let long = format!("/{}", "a".repeat(MAX_IMAGE_URL_BYTES));
        assert!(check_image_url(&long)
            .unwrap_err()
            .contains("2048 characters"));
        assert!(
            check_image_url("/caf\u{e9}.svg").is_err(),
            "percent-encoded only"
        );
        let p = validate(input(), "EUR").unwrap();
        assert_eq!(p.image_url.as_deref(), Some("/shop/images/mug.svg"));
        let mut blank = input();
        blank.image_url = Some(String::new());
        assert_eq!(
            validate(blank, "EUR").unwrap().image_url,
            None,
            "empty is none"
        );
        let mut bad = input();
        bad.image_url = Some("javascript:alert(1)".into());
        let DomainError::Invalid(errors) = validate(bad, "EUR").unwrap_err() else {
            panic!("a field error")
        };
        assert_eq!(errors[0].field, "image_url");
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
            image_url: Some("http://example.com/x.png".into()),
        };
        let p = validate(bad, "EUR").map_err(Problem::from).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "description",
                "category",
                "price_minor",
                "currency",
                "image_url"
            ]
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
