//! The saga under a fault: PostgreSQL stops for 10 s right after a burst of
//! orders and comes back. Every order must still end final with money and
//! stock in agreement, as `mart check` (the operators' invariant check)
//! reports. A test binary of its own: it stops its PostgreSQL cluster.

mod saga_support;

use std::process::Command;
use std::time::Duration;

use mart_integration_tests::{postgres, repo_root, Host};
use saga_support::*;

#[test]
fn a_database_outage_mid_burst_delays_the_saga_but_breaks_nothing() {
    let host = Host::start("spin.toml", &[]);
    let pg = postgres();
    let item = product(&host, 300, 100);
    let placed = burst(&host, &item, 3, 4);
    // The database goes away while the saga is under way...
    let script = repo_root().join("scripts/postgres.sh");
    let dir = pg.data_dir().to_str().unwrap().to_string();
    assert!(Command::new(&script)
        .args(["stop", &dir])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_secs(10));
    let port = pg.port.to_string();
    assert!(Command::new(&script)
        .args(["start", &dir, &port])
        .status()
        .unwrap()
        .success());

    // ...and every order still ends paid, charged once, stock committed.
    settled(&host, Duration::from_secs(240));
    for (user, id) in &placed {
        let order = host.get_as(user, &format!("/orders/{id}")).json();
        assert_eq!(order["status"], "paid", "{order}");
    }
    assert_eq!(stock(&host, &item), (88, 0));

    // The check itself fails on a broken invariant: a paid order without
    // its payment (one test: a parallel one would see it).
    pg.execute_script(
        "orders",
        "INSERT INTO orders (user_id, status, currency, total_minor, shipping_address, payment_provider) \
         VALUES ('00000000-0000-4000-8000-0000000000c1', 'paid', 'EUR', 100, '{}', 'fake')",
    );
    let (code, report) = mart_check();
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("is paid but its payment is missing"),
        "{report}"
    );
    pg.execute_script(
        "orders",
        "DELETE FROM orders WHERE user_id = '00000000-0000-4000-8000-0000000000c1'",
    );
}
