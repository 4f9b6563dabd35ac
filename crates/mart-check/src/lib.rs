//! The shop's invariants, checked across the service databases: what an
//! operator runs after an incident (`mart check`) and what the fault tests
//! assert. Money and stock are compared order by order (`judge`):
//!
//! - a paid (or shipped, delivered) order has its succeeded payment and all
//!   its reservations committed;
//! - a cancelled order holds no stock and no money;
//! - a refunded order's payment is refunded;
//! - every product's `reserved` stock is the sum of its open reservations.
//!
//! The saga reaches the services one event at a time, so a service may lag
//! behind the order (a paid order whose stock is not committed yet): that is
//! reported as *unsettled* (exit 2), and only a state no further step can
//! repair as a *violation* (exit 1).
//!
//! With the brokers (`check_with`), it also reads every consumer group's
//! committed offsets on every partition of the topics it reads: a partition
//! whose group lags behind its end with no progress between two readings is
//! unsettled too (nobody may be consuming it: a member the broker still
//! counts may be gone). Nothing is lost there, so it is never a violation.

mod kafka;

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
    /// Consumer groups' partitions read, when the brokers were given.
    pub partitions: Option<usize>,
    /// Partitions a group lags on with no progress, one line each.
    pub lagging: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.unsettled.is_empty() && self.violations.is_empty() && self.lagging.is_empty()
    }

    /// `mart check`'s exit code: 1 on a violation, 2 while anything is
    /// unsettled (orders or lagging partitions), else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.violations.is_empty() {
            1
        } else if !self.is_clean() {
            2
        } else {
            0
        }
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
        if let Some(partitions) = self.partitions {
            writeln!(
                f,
                "{partitions} consumer group partitions: {} lagging with no progress",
                self.lagging.len()
            )?;
        }
        for order in &self.unsettled {
            writeln!(f, "  unsettled: order {order}")?;
        }
        for partition in &self.lagging {
            writeln!(f, "  unsettled: {partition}")?;
        }
        for violation in &self.violations {
            writeln!(f, "  VIOLATION: {violation}")?;
        }
        Ok(())
    }
}

/// Checks the databases on the server at `server_url`. The services are read
/// one after another, not in one snapshot, so a change between the reads
/// (a paid order refunded meanwhile) could look like a contradiction: a
/// violation counts only if a second reading, a second later, finds it too.
pub async fn check(server_url: &str) -> anyhow::Result<Report> {
    check_with(server_url, None).await
}

/// `check`, and with `kafka_brokers` the consumer groups' lag (see the
/// module's documentation), read over the same second.
pub async fn check_with(server_url: &str, kafka_brokers: Option<&str>) -> anyhow::Result<Report> {
    let first_kafka = match kafka_brokers {
        Some(brokers) => Some(kafka::read_blocking(brokers).await?),
        None => None,
    };
    let mut report = check_once(server_url).await?;
    if !report.violations.is_empty() || first_kafka.is_some() {
        tokio::time::sleep(kafka::PAUSE).await;
    }
    if !report.violations.is_empty() {
        let again = check_once(server_url).await?;
        report.violations.retain(|v| again.violations.contains(v));
    }
    if let (Some(first), Some(brokers)) = (first_kafka, kafka_brokers) {
        let second = kafka::read_blocking(brokers).await?;
        report.partitions = Some(second.len());
        report.lagging = kafka::lagging(&first, &second);
    }
    Ok(report)
}

async fn check_once(server_url: &str) -> anyhow::Result<Report> {
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
    // Refunds of orders' payments that the provider refused for good.
    let refused: HashMap<String, String> = rows(
        &payments,
        "SELECT order_id::text, refused FROM refunds \
         WHERE status = 'due' AND of_payment AND refused IS NOT NULL",
    )
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
        let payment = Payment {
            status: paid.get(order).map(String::as_str),
            refund_refused: refused.get(order).map(String::as_str),
        };
        let reservations = held.get(order).map(Vec::as_slice).unwrap_or_default();
        match judge(status, &payment, reservations) {
            Verdict::Settled => {}
            Verdict::Unsettled(why) => report.unsettled.push(format!("{order}: {why}")),
            Verdict::Broken(why) => report.violations.push(format!("order {order} {why}")),
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

/// One order's standing, from its status, its payment and its reservations.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Settled,
    /// Still moving: the saga's next step has not reached every service.
    Unsettled(String),
    /// A state no further step can repair.
    Broken(String),
}

/// What payments knows of an order.
#[derive(Debug, Default)]
struct Payment<'a> {
    status: Option<&'a str>,
    /// Why the provider refused for good to refund it, if it did.
    refund_refused: Option<&'a str>,
}

/// The saga's rules, service by service. An order is paid only after its
/// payment succeeded and its stock was reserved; inventory commits or
/// releases the stock, and payments refunds, when the order's event reaches
/// them, so those lag behind the order's status (unsettled) but never
/// contradict it (broken).
fn judge(status: &str, payment: &Payment<'_>, reservations: &[String]) -> Verdict {
    use Verdict::*;
    let held = |state: &str| reservations.iter().any(|r| r == state);
    // Money that should go back and that no further step returns.
    let refund_waits = |unsettled: &str| match payment.refund_refused {
        Some(reason) => Broken(format!(
            "is {status} but the provider refused to refund its payment ({reason}); \
             its payment.refund_due is in the dead-letter topic"
        )),
        None => Unsettled(unsettled.into()),
    };
    let payment = payment.status;
    match status {
        "pending" | "reserved" => Unsettled(format!("still {status}")),
        "paid" | "shipped" | "delivered" => {
            if payment != Some("succeeded") {
                Broken(format!(
                    "is {status} but its payment is {}",
                    payment.unwrap_or("missing")
                ))
            } else if reservations.is_empty() || held("released") {
                Broken(format!("is {status} but its stock is {reservations:?}"))
            } else if held("reserved") {
                Unsettled("paid; its stock is not committed yet".into())
            } else {
                Settled
            }
        }
        "cancelled" => {
            if held("committed") {
                Broken(format!(
                    "is cancelled but its stock left the shelf: {reservations:?}"
                ))
            } else if payment == Some("succeeded") {
                refund_waits("cancelled; its payment is not refunded yet")
            } else if held("reserved") {
                Unsettled("cancelled; its stock is not released yet".into())
            } else {
                Settled
            }
        }
        "refunded" => match payment {
            Some("refunded") => Settled,
            Some("succeeded") => refund_waits("refunded; the refund is not through yet"),
            other => Broken(format!(
                "is refunded but its payment is {}",
                other.unwrap_or("missing")
            )),
        },
        other => Broken(format!("has an unknown status `{other}`")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(status: Option<&str>) -> Payment<'_> {
        Payment {
            status,
            refund_refused: None,
        }
    }

    fn r(states: &[&str]) -> Vec<String> {
        states.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lagging_services_are_unsettled_contradictions_are_broken() {
        use Verdict::*;
        assert_eq!(
            judge("paid", &paid(Some("succeeded")), &r(&["committed"])),
            Settled
        );
        assert!(matches!(
            judge("paid", &paid(Some("succeeded")), &r(&["reserved"])),
            Unsettled(_)
        ));
        assert!(matches!(
            judge("paid", &paid(None), &r(&["committed"])),
            Broken(_)
        ));
        assert!(matches!(
            judge("paid", &paid(Some("succeeded")), &r(&["released"])),
            Broken(_)
        ));
        assert!(matches!(
            judge("cancelled", &paid(Some("succeeded")), &r(&["released"])),
            Unsettled(_)
        ));
        assert!(matches!(
            judge("cancelled", &paid(Some("failed")), &r(&["committed"])),
            Broken(_)
        ));
        assert_eq!(
            judge("cancelled", &paid(Some("failed")), &r(&["released"])),
            Settled
        );
        assert_eq!(judge("cancelled", &paid(None), &[]), Settled);
        assert!(matches!(judge("pending", &paid(None), &[]), Unsettled(_)));
        assert!(matches!(
            judge("refunded", &paid(Some("failed")), &[]),
            Broken(_)
        ));
        // A refund the provider refused for good returns no money by itself.
        let refused = Payment {
            status: Some("succeeded"),
            refund_refused: Some("PayFast refused the refund (400)"),
        };
        assert!(matches!(
            judge("cancelled", &refused, &r(&["released"])),
            Broken(why) if why.contains("refused")
        ));
        assert!(matches!(judge("refunded", &refused, &[]), Broken(_)));
    }
}
