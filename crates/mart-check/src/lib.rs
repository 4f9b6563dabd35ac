//! The shop's invariants, checked across the service databases: what an
//! operator runs after an incident (`mart check`) and what the fault tests
//! assert. Money and stock are compared order by order:
//!
//! - every order is final (`paid`, `shipped`, `delivered`, `cancelled`,
//!   `refunded`) once the saga settled; `pending`/`reserved` ones are listed
//!   as unsettled, not as violations;
//! - a paid (or shipped, delivered) order has exactly its succeeded payment
//!   and all its reservations committed;
//! - a cancelled order holds no stock (no reservation still `reserved` or
//!   `committed`) and no money (no `succeeded` payment);
//! - a refunded order's payment is refunded;
//! - every product's `reserved` stock is the sum of its open reservations.

use std::collections::HashMap;

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    pub orders: usize,
    /// Orders not final yet (the saga may still be moving them).
    pub unsettled: Vec<String>,
    /// Broken invariants, one line each, naming the order or product.
    pub violations: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.unsettled.is_empty() && self.violations.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} orders: {} unsettled, {} violation(s)",
            self.orders,
            self.unsettled.len(),
            self.violations.len()
        )?;
        for order in &self.unsettled {
            writeln!(f, "  unsettled: order {order}")?;
        }
        for violation in &self.violations {
            writeln!(f, "  VIOLATION: {violation}")?;
        }
        Ok(())
    }
}

/// Checks the databases on the server at `server_url`.
pub async fn check(server_url: &str) -> anyhow::Result<Report> {
    let orders = connect(server_url, "orders").await?;
    let payments = connect(server_url, "payments").await?;
    let inventory = connect(server_url, "inventory").await?;

    let statuses: Vec<(String, String)> = rows(
        &orders,
        "SELECT id::text, status FROM orders ORDER BY created_at",
    )
    .await?;
    let paid: HashMap<String, String> =
        rows(&payments, "SELECT order_id::text, status FROM payments")
            .await?
            .into_iter()
            .collect();
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    for (order, status) in rows(
        &inventory,
        "SELECT order_id::text, status FROM reservations",
    )
    .await?
    {
        held.entry(order).or_default().push(status);
    }

    let mut report = Report {
        orders: statuses.len(),
        ..Report::default()
    };
    for (order, status) in &statuses {
        let payment = paid.get(order).map(String::as_str);
        let reservations = held.get(order).map(Vec::as_slice).unwrap_or_default();
        match status.as_str() {
            "pending" | "reserved" => report.unsettled.push(order.clone()),
            "paid" | "shipped" | "delivered" => {
                if payment != Some("succeeded") {
                    report.violations.push(format!(
                        "order {order} is {status} but its payment is {}",
                        payment.unwrap_or("missing")
                    ));
                }
                if reservations.is_empty() || reservations.iter().any(|r| r != "committed") {
                    report.violations.push(format!(
                        "order {order} is {status} but its stock is {reservations:?}, not all committed"
                    ));
                }
            }
            "cancelled" => {
                if payment == Some("succeeded") {
                    report.violations.push(format!(
                        "order {order} is cancelled but its payment was kept"
                    ));
                }
                if reservations.iter().any(|r| r != "released") {
                    report.violations.push(format!(
                        "order {order} is cancelled but still holds stock: {reservations:?}"
                    ));
                }
            }
            "refunded" => {
                if payment != Some("refunded") {
                    report.violations.push(format!(
                        "order {order} is refunded but its payment is {}",
                        payment.unwrap_or("missing")
                    ));
                }
            }
            other => report
                .violations
                .push(format!("order {order} has an unknown status `{other}`")),
        }
    }
    let stock: Vec<(String, i64, i64)> = inventory
        .query(
            "SELECT s.product_id::text, s.reserved::int8, \
                    coalesce(sum(r.quantity) FILTER (WHERE r.status = 'reserved'), 0)::int8 \
             FROM stock s LEFT JOIN reservations r ON r.product_id = s.product_id \
             GROUP BY s.product_id, s.reserved",
            &[],
        )
        .await
        .context("reading stock")?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (product, reserved, open) in stock {
        if reserved != open {
            report.violations.push(format!(
                "product {product} has {reserved} reserved but {open} in open reservations"
            ));
        }
    }
    Ok(report)
}

async fn connect(server_url: &str, database: &str) -> anyhow::Result<Client> {
    let url = mart_migrate::database_url(server_url, database)?;
    let (client, connection) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_postgres::connect(&url, NoTls),
    )
    .await
    .with_context(|| format!("connecting to {database}: timed out"))?
    .with_context(|| format!("connecting to {database}"))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn rows(client: &Client, sql: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(client
        .query(sql, &[])
        .await
        .with_context(|| sql.to_string())?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
