//! Abuse while a customer shops: a thousand connections from one client
//! that send the headers of a `POST /users` with a large body and then
//! nothing. They hold at most their share of connections (never an
//! instance); a customer on another address signs up, fills a cart and
//! checks out meanwhile, and the order is paid. A test binary of its own:
//! the abuse would slow the other tests of its binary.

mod saga_support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mart_integration_tests::Host;
use saga_support::*;

/// A connection from `source` (127.0.0.0/8 is all loopback) that sends a
/// request's headers and never its body; `None` if it could not be made.
fn slow_client(runtime: &tokio::runtime::Runtime, host: &Host, source: &str) -> Option<TcpStream> {
    let addr: SocketAddr = host.base.trim_start_matches("http://").parse().unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(format!("{source}:0").parse().unwrap()).ok()?;
        tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
            .await
            .ok()?
            .ok()
    })?;
    let mut stream = stream.into_std().ok()?;
    stream.set_nonblocking(false).ok()?;
    stream
        .write_all(
            b"POST /users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n",
        )
        .ok()?;
    Some(stream)
}

#[test]
fn a_thousand_slow_connections_from_one_client_do_not_stop_a_checkout() {
    // A body timeout far beyond the checkout's bound below, so that a
    // checkout that waited for the slow clients cannot pass for a slow one.
    let host = Host::start(
        "spin.toml",
        &[("MART_HTTP_BODY_TIMEOUT_SECS", "600".into())],
    );
    let item = product(&host, 900, 10);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slow: Vec<TcpStream> = (0..1000)
        .filter_map(|_| slow_client(&runtime, &host, "127.0.0.2"))
        .collect();
    assert!(!slow.is_empty());
    // The abuser's connections beyond its share were refused at once.
    mart_integration_tests::eventually(WAIT, "the abuser's extra connections refused", || {
        host.metrics()
            .contains(r#"mart_http_refused_total{reason="client_connections_full"}"#)
            .then_some(())
    });

    // A customer on another address shops as usual meanwhile.
    let started = Instant::now();
    let user = customer(&host);
    let cart = cart_with(&host, &user, &[(&item, 2)]);
    let order = place(
        &host,
        &user,
        &unique("k"),
        &cart_order_body(&cart, "tok_visa"),
    );
    assert_eq!(order.status, 201, "{}", order.text());
    let order = order.json()["id"].as_str().unwrap().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "the checkout waited for the slow clients: {:?}",
        started.elapsed()
    );
    wait_for(&host, &user, &order, "paid");
    mart_integration_tests::eventually(WAIT, "the two units committed", || {
        (stock(&host, &item) == (8, 0)).then_some(())
    });
    // Handlers of the order's events may still be running; once they are
    // done no instance is alive, though the slow clients are still there.
    mart_integration_tests::eventually(WAIT, "slow clients holding no instance", || {
        host.metrics()
            .contains("mart_instances_active 0")
            .then_some(())
    });
    drop(slow);
}
