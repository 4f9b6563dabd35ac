//! A component for testing the host, not part of the app. Each path under
//! `/probe/` does one thing the integration tests check from outside.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, ParameterValue, RangeBoundKind};
use spin_sdk::variables;

/// Requests this instance has served: a WASIp2 instance serves one, so
/// this never passes 1 (the p3 probe's counterpart does).
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[http_component]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let path = header(&request, "spin-path-info");
    let query: Vec<(String, String)> = form_urlencoded::parse(request.query().as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(match path.as_str() {
        "/noop" => Response::new(200, ()),
        "/count" => {
            let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            text(200, &format!("served={served}"))
        }
        "/headers" => headers(&request),
        "/trap" => panic!("the probe was asked to trap"),
        "/loop" => spin_forever(),
        "/sleep" => {
            let ms: u64 = param("ms").parse()?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            text(200, "slept")
        }
        "/alloc" => alloc(param("mib").parse()?),
        "/var" => match variables::get(&param("name")) {
            Ok(value) => text(200, &value),
            Err(e) => text(404, &format!("{e:?}")),
        },
        "/http" => outbound(&param("url")).await,
        "/tcp" => tcp_exchange(&param("addr")),
        "/tcp-listen" => tcp_listen(&param("addr")),
        "/chain" => outbound("http://probe-callee.spin.internal/headers?from=chain").await,
        "/pg" => pg_round_trip(&param("url")),
        "/pg-query" => pg_query(&param("url"), &param("sql")),
        "/pg-open" => match Connection::open(&param("url")) {
            Ok(_) => text(200, "opened"),
            Err(e) => text(502, &format!("{e:?}")),
        },
        _ => text(404, "no such probe"),
    })
}

fn header(request: &Request, name: &str) -> String {
    request
        .header(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .build()
}

fn headers(request: &Request) -> Response {
    let mut map = serde_json::Map::new();
    for (name, value) in request.headers() {
        if name.starts_with("spin-") || name == "host" || name == "traceparent" {
            map.insert(name.to_string(), value.as_str().unwrap_or_default().into());
        }
    }
    map.insert("uri".into(), request.uri().into());
    map.insert("method".into(), format!("{:?}", request.method()).into());
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(serde_json::Value::Object(map).to_string())
        .build()
}

fn spin_forever() -> Response {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
        if x == u64::MAX {
            return text(200, "unreachable");
        }
    }
}

fn alloc(mib: usize) -> Response {
    let mut block = vec![0u8; mib << 20];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    text(
        200,
        &format!("allocated {} MiB", std::hint::black_box(block).len() >> 20),
    )
}

/// Sends `ping` over TCP (wasi:sockets) and answers what came back, or
/// 502 with the error (e.g. `PermissionDenied` when the host refuses).
fn tcp_exchange(addr: &str) -> Response {
    use std::io::{Read, Write};
    let exchange = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.write_all(b"ping\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    match exchange() {
        Ok(answer) => text(200, answer.trim()),
        Err(e) => text(502, &format!("{:?}: {e}", e.kind())),
    }
}

/// Tries to listen on `addr` (bind, then listen): 200 with the address
/// it got, or 502 with the error.
fn tcp_listen(addr: &str) -> Response {
    match std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()) {
        Ok(local) => text(200, &format!("listening on {local}")),
        Err(e) => text(502, &format!("{:?}: {e}", e.kind())),
    }
}

async fn outbound(url: &str) -> Response {
    let request = Request::builder().method(Method::Get).uri(url).build();
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(response) => {
            let body = String::from_utf8_lossy(response.body()).into_owned();
            text(200, &format!("{} {}", response.status(), body))
        }
        Err(e) => text(502, &format!("{e:?}")),
    }
}

/// Runs `sql` as given (no parameters): 200 with the row count, or 500
/// with the host's error.
fn pg_query(url: &str, sql: &str) -> Response {
    let result = Connection::open(url).and_then(|c| c.query(sql, &[]));
    match result {
        Ok(rows) => text(200, &format!("{} row(s)", rows.rows.len())),
        Err(e) => text(500, &format!("{e:?}")),
    }
}

fn pg_round_trip(url: &str) -> Response {
    let connection = match Connection::open(url) {
        Ok(c) => c,
        Err(e) => return text(502, &format!("{e:?}")),
    };
    let params = [
        ParameterValue::Int32(7),
        ParameterValue::Int64(-9_000_000_000),
        ParameterValue::Str("héllo".into()),
        ParameterValue::Decimal("12345.678".into()),
        ParameterValue::Uuid("0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10".into()),
        ParameterValue::Jsonb(br#"{"a":[1,2]}"#.to_vec()),
        ParameterValue::Date((2024, 2, 29)),
        ParameterValue::Datetime((2024, 2, 29, 13, 14, 15, 123_456_000)),
        ParameterValue::RangeInt32((
            Some((1, RangeBoundKind::Inclusive)),
            Some((10, RangeBoundKind::Exclusive)),
        )),
        ParameterValue::ArrayStr(vec![Some("a".into()), None]),
        ParameterValue::Interval(spin_sdk::pg4::Interval {
            micros: 1_500_000,
            days: 2,
            months: 3,
        }),
        ParameterValue::Boolean(true),
        ParameterValue::Binary(vec![0, 255]),
        ParameterValue::Floating64(2.5),
        ParameterValue::Int16(-3),
        ParameterValue::Time((23, 59, 58, 0)),
        ParameterValue::ArrayInt64(vec![Some(1), None, Some(3)]),
        ParameterValue::DbNull,
        ParameterValue::RangeDecimal((Some(("1.5".into(), RangeBoundKind::Inclusive)), None)),
        ParameterValue::Timestamp(0),
    ];
    let sql = "SELECT $1::int4, $2::int8, $3::text, $4::numeric, $5::uuid, $6::jsonb, $7::date, \
               $8::timestamptz, $9::int4range, $10::text[], $11::interval, $12::bool, $13::bytea, \
               $14::float8, $15::int2, $16::time, $17::int8[], $18::text, $19::numrange, $20::timestamp, \
               'a'::varchar, '10.0.0.1'::inet";
    match connection.query(sql, &params) {
        Ok(rows) => {
            let values: Vec<String> = rows.rows[0].iter().map(|v| format!("{v:?}")).collect();
            let types: Vec<String> = rows
                .columns
                .iter()
                .map(|c| format!("{:?}", c.data_type))
                .collect();
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(serde_json::json!({ "values": values, "types": types }).to_string())
                .build()
        }
        Err(e) => text(500, &format!("{e:?}")),
    }
}
