//! The carts database: every statement parameterised.

use mart_domain::carts::{total_minor, Line};
use mart_domain::DomainError;
use mart_guest::db::{self as pg, decode, uuid, uuid_text, ParameterValue};

pub struct Cart {
    pub id: String,
    pub owner_id: String,
    pub currency: String,
    pub status: String,
    pub lines: Vec<Line>,
}

impl Cart {
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "owner_id": self.owner_id,
            "status": self.status,
            "currency": self.currency,
            "lines": self.lines,
            "total_minor": total_minor(&self.lines),
        })
    }
}

mart_guest::service_database!(pub struct Db("carts"));

fn failed(e: impl std::fmt::Display) -> DomainError {
    pg::failed("carts", e)
}

impl Db {
    /// Closes the cart an order was placed from (`open` → `checked_out`,
    /// once; a closed cart stays as it is).
    pub async fn check_out(&self, cart: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE carts SET status = 'checked_out', updated_at = now() \
                 WHERE id = $1 AND status = 'open'",
                &[uuid(cart)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    pub async fn create(&self, owner: &str, currency: &str) -> Result<Cart, DomainError> {
        let rows = self
            .connection
            .query(
                "INSERT INTO carts (owner_id, currency) VALUES ($1, $2) RETURNING id",
                &[uuid(owner), ParameterValue::Str(currency.to_string())],
            )
            .await
            .map_err(failed)?;
        let id = uuid_text(
            &rows
                .rows
                .first()
                .ok_or_else(|| failed("insert returned no row"))?[0],
        )?;
        self.cart(&id)
            .await?
            .ok_or_else(|| DomainError::internal("the new cart vanished"))
    }

    pub async fn cart(&self, id: &str) -> Result<Option<Cart>, DomainError> {
        let rows = self
            .connection
            .query(
                "SELECT id, owner_id, currency, status FROM carts WHERE id = $1",
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        let Some(row) = rows.rows.first() else {
            return Ok(None);
        };
        let items = self
            .connection
            .query(
                "SELECT product_id, name, quantity, unit_price_minor FROM cart_items
                 WHERE cart_id = $1 ORDER BY added_at, product_id",
                &[uuid(id)],
            )
            .await
            .map_err(failed)?;
        let lines = items
            .rows
            .iter()
            .map(|r| {
                Ok(Line::new(
                    uuid_text(&r[0])?,
                    decode(&r[1])?,
                    decode(&r[2])?,
                    decode(&r[3])?,
                ))
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        Ok(Some(Cart {
            id: uuid_text(&row[0])?,
            owner_id: uuid_text(&row[1])?,
            currency: decode(&row[2])?,
            status: decode(&row[3])?,
            lines,
        }))
    }

    /// Sets a line's quantity and price snapshot; only while the cart is open.
    pub async fn upsert_line(
        &self,
        cart: &str,
        product: &str,
        name: &str,
        quantity: i32,
        price: i64,
    ) -> Result<(), DomainError> {
        let changed = self
            .connection
            .execute(
                "INSERT INTO cart_items (cart_id, product_id, name, quantity, unit_price_minor)
                 SELECT $1, $2, $3, $4, $5 FROM carts WHERE id = $1 AND status = 'open'
                 ON CONFLICT (cart_id, product_id) DO UPDATE
                 SET name = EXCLUDED.name, quantity = EXCLUDED.quantity, unit_price_minor = EXCLUDED.unit_price_minor",
                &[
                    uuid(cart),
                    uuid(product),
                    ParameterValue::Str(name.to_string()),
                    ParameterValue::Int32(quantity),
                    ParameterValue::Int64(price),
                ],
            )
            .await
            .map_err(failed)?;
        if changed == 0 {
            return Err(DomainError::conflict(format!(
                "cart {cart} was checked out and is closed"
            )));
        }
        self.touch(cart).await
    }

    pub async fn remove_line(&self, cart: &str, product: &str) -> Result<bool, DomainError> {
        let removed = self
            .connection
            .execute(
                "DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2",
                &[uuid(cart), uuid(product)],
            )
            .await
            .map_err(failed)?;
        self.touch(cart).await?;
        Ok(removed > 0)
    }

    pub async fn clear(&self, cart: &str) -> Result<(), DomainError> {
        self.connection
            .execute("DELETE FROM cart_items WHERE cart_id = $1", &[uuid(cart)])
            .await
            .map_err(failed)?;
        self.touch(cart).await
    }

    async fn touch(&self, cart: &str) -> Result<(), DomainError> {
        self.connection
            .execute(
                "UPDATE carts SET updated_at = now() WHERE id = $1",
                &[uuid(cart)],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }
}
