//! The catalog's database: every statement parameterised.

use mart_domain::catalog::{Product, ProductDeleted, ValidProduct};
use mart_domain::events::EventData;
use mart_domain::DomainError;
use mart_guest::db::{self as pg, decode, timestamp, uuid_text};
use mart_guest::db::{Connection, Database, ParameterValue, RowSet};

const COLUMNS: &str = "id, name, description, category, price_minor, currency, image_url, \
     (created_at AT TIME ZONE 'UTC') AS created_at, (updated_at AT TIME ZONE 'UTC') AS updated_at";

pub struct ListFilter<'a> {
    pub text: Option<&'a str>,
    pub category: Option<&'a str>,
    /// Keyset position: the (name, id) of the last item already seen.
    pub after: Option<(String, String)>,
    pub offset: u32,
    pub limit: u32,
}

async fn connect() -> Result<Database, DomainError> {
    Database::connect("catalog").await
}

pub async fn shop_currency() -> Result<String, DomainError> {
    mart_guest::config::variable("shop_currency").await
}

fn failed(e: impl std::fmt::Display) -> DomainError {
    pg::failed("catalog", e)
}

pub fn parse_id(id: &str) -> Result<String, DomainError> {
    mart_domain::parse_uuid(id)
        .ok_or_else(|| DomainError::not_found(format!("no product has id {id}")))
}

fn text(value: Option<&str>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, |v| {
        ParameterValue::Str(v.to_string())
    })
}

pub async fn list(filter: &ListFilter<'_>) -> Result<Vec<Product>, DomainError> {
    let (after_name, after_id) = match &filter.after {
        Some((name, id)) => (Some(name.as_str()), Some(id.as_str())),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM products
         WHERE ($1::text IS NULL OR strpos(lower(name), lower($1)) > 0
                                 OR strpos(lower(description), lower($1)) > 0)
           AND ($2::text IS NULL OR category = $2)
           AND ($3::text IS NULL OR (name, id::text) > ($3, $4::text))
         ORDER BY name, id::text
         LIMIT $5 OFFSET $6"
    );
    let params = [
        text(filter.text),
        text(filter.category),
        text(after_name),
        text(after_id),
        ParameterValue::Int64(i64::from(filter.limit) + 1),
        ParameterValue::Int64(i64::from(filter.offset)),
    ];
    let rows = connect()
        .await?
        .connection
        .query(&sql, &params)
        .await
        .map_err(failed)?;
    products(&rows)
}

pub async fn get(id: &str) -> Result<Option<Product>, DomainError> {
    let sql = format!("SELECT {COLUMNS} FROM products WHERE id = $1");
    let rows = connect()
        .await?
        .connection
        .query(&sql, &[ParameterValue::Uuid(id.to_string())])
        .await
        .map_err(failed)?;
    Ok(products(&rows)?.into_iter().next())
}

/// Runs a write and records its event in one transaction: other services
/// learn of every catalog change through the outbox.
async fn write_with_event<T>(
    work: impl AsyncFnOnce(&Connection) -> Result<Option<T>, DomainError>,
    event: impl FnOnce(&T) -> (String, EventData),
) -> Result<Option<T>, DomainError> {
    let db = connect().await?;
    db.transaction(async || {
        let Some(value) = work(&db.connection).await? else {
            return Ok(None);
        };
        let (aggregate_id, event) = event(&value);
        db.record(&aggregate_id, &event).await?;
        Ok(Some(value))
    })
    .await
}

/// The event of a product change: `kind` is `EventData::ProductCreated`
/// or `ProductUpdated`, with the product as the API shows it.
fn product_event(kind: fn(Product) -> EventData) -> impl FnOnce(&Product) -> (String, EventData) {
    move |product| (product.id.clone(), kind(product.clone()))
}

pub async fn insert(p: &ValidProduct) -> Result<Product, DomainError> {
    let sql = format!(
        "INSERT INTO products (name, description, category, price_minor, currency, image_url)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let created = write_with_event(
        async |db| {
            let rows = db.query(&sql, &product_params(p)).await.map_err(failed)?;
            Ok(products(&rows)?.into_iter().next())
        },
        product_event(EventData::ProductCreated),
    )
    .await?;
    created.ok_or_else(|| DomainError::internal("the insert returned no row"))
}

pub async fn update(id: &str, p: &ValidProduct) -> Result<Option<Product>, DomainError> {
    let sql = format!(
        "UPDATE products SET name = $1, description = $2, category = $3, price_minor = $4,
                currency = $5, image_url = $6, updated_at = now()
         WHERE id = $7 RETURNING {COLUMNS}"
    );
    let mut params = product_params(p).to_vec();
    params.push(ParameterValue::Uuid(id.to_string()));
    write_with_event(
        async |db| {
            let rows = db.query(&sql, &params).await.map_err(failed)?;
            Ok(products(&rows)?.into_iter().next())
        },
        product_event(EventData::ProductUpdated),
    )
    .await
}

pub async fn delete(id: &str) -> Result<bool, DomainError> {
    let deleted = write_with_event(
        async |db| {
            let count = db
                .execute(
                    "DELETE FROM products WHERE id = $1",
                    &[ParameterValue::Uuid(id.to_string())],
                )
                .await
                .map_err(failed)?;
            Ok((count > 0).then(|| id.to_string()))
        },
        |id| {
            (
                id.clone(),
                EventData::ProductDeleted(ProductDeleted {
                    product_id: id.clone(),
                }),
            )
        },
    )
    .await?;
    Ok(deleted.is_some())
}

fn product_params(p: &ValidProduct) -> [ParameterValue; 6] {
    [
        ParameterValue::Str(p.name.clone()),
        ParameterValue::Str(p.description.clone()),
        text(p.category.as_deref()),
        ParameterValue::Int64(p.price_minor),
        ParameterValue::Str(p.currency.clone()),
        text(p.image_url.as_deref()),
    ]
}

/// Maps rows selected with `COLUMNS`, in that order.
fn products(rows: &RowSet) -> Result<Vec<Product>, DomainError> {
    rows.rows
        .iter()
        .map(|row| {
            let [id, name, description, category, price_minor, currency, image_url, created_at, updated_at] =
                row.as_slice()
            else {
                return Err(failed(format!("expected 9 columns, got {}", row.len())));
            };
            Ok(Product {
                id: uuid_text(id)?,
                name: decode(name)?,
                description: decode(description)?,
                category: decode(category)?,
                price_minor: decode(price_minor)?,
                currency: decode(currency)?,
                image_url: decode(image_url)?,
                created_at: timestamp(created_at)?,
                updated_at: timestamp(updated_at)?,
            })
        })
        .collect()
}
