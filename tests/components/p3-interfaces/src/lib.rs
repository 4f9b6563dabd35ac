//! A component for testing the host, not part of the app: the p3 twin of
//! `spin-interfaces`, built with spin-sdk 6 (Spin 4's async interfaces:
//! key-value 3.0, SQLite 3.1, Redis 3.0, MQTT 3.0, and wasi:keyvalue).
//! Its routes and answers are spin-interfaces' (200 with the result as
//! JSON, 409 with the interface's error in its Debug form, e.g.
//! `Error::AccessDenied`), so one test runs against either; `/wasi-kv` and
//! `/sqlite-stream` are what only this generation has.

use spin_sdk::experimental::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;
use spin_sdk::{key_value, mqtt, redis, sqlite};

type Params = Vec<(String, String)>;
type Json = serde_json::Value;

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    // The route is `/<component>/...`: the probe is the last segment.
    let path = request.uri().path().to_string();
    let probe = path.rsplit('/').next().unwrap_or_default().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let params: Params = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let p = |name: &str| param(&params, name);
    Ok(match probe.as_str() {
        "kv" => answer(kv(&p("store"), &p("op"), &p("key"), &p("value")).await),
        "wasi-kv" => answer(wasi_keyvalue(&params)),
        // SQLite 3.1 serves both of spin-interfaces' SQLite routes; `/sqlite3`
        // adds what 3.0 added over 2.0.
        "sqlite" => answer(sqlite_v3_1(&p("db"), &p("sql"), &params, false).await),
        "sqlite3" => answer(sqlite_v3_1(&p("db"), &p("sql"), &params, true).await),
        "sqlite-stream" => answer(sqlite_streamed(&p("db"), &p("sql"), &params).await),
        "redis" => answer(redis_op(&p("addr"), &p("op"), &p("key"), &p("value")).await),
        "mqtt" => answer(mqtt_publish(&p("addr"), &p("topic"), &p("payload"), &p("qos")).await),
        _ => text(404, "no such probe".into()),
    })
}

fn param(params: &Params, name: &str) -> String {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn text(status: u16, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status.try_into().unwrap_or(spin_sdk::http::StatusCode::OK);
    response
}

fn answer<E: std::fmt::Debug>(result: Result<Json, E>) -> Response<String> {
    match result {
        Ok(value) => {
            let mut response = text(200, value.to_string());
            response.headers_mut().insert(
                "content-type",
                spin_sdk::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => text(409, format!("{e:?}")),
    }
}

/// A failure already put in words (its Debug form is the words).
struct Failed(String);

impl std::fmt::Debug for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn utf8(value: Option<Vec<u8>>) -> Json {
    value
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .into()
}

async fn kv(label: &str, op: &str, key: &str, value: &str) -> Result<Json, key_value::Error> {
    let store = key_value::Store::open(label).await?;
    Ok(match op {
        "set" => {
            store.set(key, value.as_bytes()).await?;
            Json::Null
        }
        "get" => utf8(store.get(key).await?),
        "delete" => {
            store.delete(key).await?;
            Json::Null
        }
        "exists" => store.exists(key).await?.into(),
        // get-keys is a stream: read it key by key, then its outcome.
        "keys" => {
            let mut stream = store.get_keys().await;
            let mut keys = Vec::new();
            while let Some(key) = stream.next().await {
                keys.push(key);
            }
            stream.result().await?;
            keys.sort();
            keys.into()
        }
        _ => "opened".into(),
    })
}

/// wasi:keyvalue on the same stores: `op` is a store, batch or atomics
/// call; `keys` a comma-separated list, `pairs` `k=v,k=v`.
fn wasi_keyvalue(params: &Params) -> Result<Json, Failed> {
    let p = |name: &str| param(params, name);
    let debug = |e: wasi_kv::Error| Failed(format!("{e:?}"));
    let bucket = wasi_kv::open(&p("store")).map_err(debug)?;
    let (key, value) = (p("key"), p("value"));
    let keys: Vec<String> = p("keys")
        .split(',')
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect();
    Ok(match p("op").as_str() {
        "set" => {
            bucket.set(&key, value.as_bytes()).map_err(debug)?;
            Json::Null
        }
        "get" => utf8(bucket.get(&key).map_err(debug)?),
        "delete" => {
            bucket.delete(&key).map_err(debug)?;
            Json::Null
        }
        "exists" => bucket.exists(&key).map_err(debug)?.into(),
        "list" => {
            let cursor = params.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v);
            let mut response = bucket
                .list_keys(cursor.map(String::as_str))
                .map_err(debug)?;
            response.keys.sort();
            serde_json::json!({ "keys": response.keys, "cursor": response.cursor })
        }
        "get-many" => batch::get_many(&bucket, &keys)
            .map_err(debug)?
            .into_iter()
            .map(|(k, v)| serde_json::json!([k, utf8(v)]))
            .collect::<Vec<_>>()
            .into(),
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = p("pairs")
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            batch::set_many(&bucket, &pairs).map_err(debug)?;
            Json::Null
        }
        "delete-many" => {
            batch::delete_many(&bucket, &keys).map_err(debug)?;
            Json::Null
        }
        "increment" => {
            let delta = value
                .parse()
                .map_err(|e| Failed(format!("delta {value:?}: {e}")))?;
            atomics::increment(&bucket, &key, delta)
                .map_err(debug)?
                .into()
        }
        "cas" => compare_and_swap(&bucket, &key, &value, &p("meanwhile"))?,
        _ => "opened".into(),
    })
}

/// Reads `key` for a compare-and-swap, sets it to `meanwhile` (if given)
/// behind the swap's back, and swaps in `value`; a failed swap is retried
/// once with the compare-and-swap the host handed back.
fn compare_and_swap(
    bucket: &wasi_kv::Bucket,
    key: &str,
    value: &str,
    meanwhile: &str,
) -> Result<Json, Failed> {
    let debug = |e: wasi_kv::Error| Failed(format!("{e:?}"));
    let cas = atomics::Cas::new(bucket, key).map_err(debug)?;
    let read = utf8(cas.current().map_err(debug)?);
    if !meanwhile.is_empty() {
        bucket.set(key, meanwhile.as_bytes()).map_err(debug)?;
    }
    match atomics::swap(cas, value.as_bytes()) {
        Ok(()) => Ok(serde_json::json!({ "read": read, "swapped": true })),
        Err(atomics::CasError::CasFailed(retry)) => {
            let reread = utf8(retry.current().map_err(debug)?);
            let retried = atomics::swap(retry, value.as_bytes()).is_ok();
            Ok(serde_json::json!({
                "read": read, "swapped": false, "reread": reread, "retried": retried,
            }))
        }
        Err(atomics::CasError::StoreError(e)) => Err(debug(e)),
    }
}

/// Statement parameters: `arg=i:<n>`, `arg=r:<x>`, `arg=t:<text>`,
/// `arg=b:<text as bytes>` or `arg=null`, in order.
fn args(params: &Params) -> Vec<sqlite::Value> {
    params
        .iter()
        .filter(|(k, _)| k == "arg")
        .map(|(_, v)| match v.split_once(':') {
            Some(("i", n)) => sqlite::Value::Integer(n.parse().unwrap_or_default()),
            Some(("r", x)) => sqlite::Value::Real(x.parse().unwrap_or_default()),
            Some(("b", b)) => sqlite::Value::Blob(b.as_bytes().to_vec()),
            Some((_, t)) => sqlite::Value::Text(t.to_string()),
            None => sqlite::Value::Null,
        })
        .collect()
}

fn row_json(row: &sqlite::RowResult) -> Json {
    row.values
        .iter()
        .map(|v| match v {
            sqlite::Value::Integer(i) => serde_json::json!(i),
            sqlite::Value::Real(f) => serde_json::json!(f),
            sqlite::Value::Text(s) => serde_json::json!(s),
            sqlite::Value::Blob(b) => serde_json::json!({ "blob": b }),
            sqlite::Value::Null => Json::Null,
        })
        .collect()
}

/// spin-interfaces' SQLite answer: columns and rows, and with `counts`
/// the changes and last rowid, all through 3.1's async functions.
async fn sqlite_v3_1(
    db: &str,
    sql: &str,
    params: &Params,
    counts: bool,
) -> Result<Json, sqlite::Error> {
    let connection = sqlite::Connection::open(db).await?;
    let result = connection.execute(sql, args(params)).await?;
    let columns = result.columns().to_vec();
    let rows: Vec<Json> = result.collect().await?.iter().map(row_json).collect();
    let mut json = serde_json::json!({ "columns": columns, "rows": rows });
    if counts {
        json["changes"] = connection.changes().await.into();
        json["last_insert_rowid"] = connection.last_insert_rowid().await.into();
    }
    Ok(json)
}

/// Reads the rows as they stream, then the statement's outcome: a failure
/// while stepping still shows the rows that came before it.
async fn sqlite_streamed(db: &str, sql: &str, params: &Params) -> Result<Json, sqlite::Error> {
    let connection = sqlite::Connection::open(db).await?;
    let mut result = connection.execute(sql, args(params)).await?;
    let mut rows = Vec::new();
    while let Some(row) = result.next().await {
        rows.push(row_json(&row));
    }
    let end = match result.result().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    Ok(serde_json::json!({ "rows": rows, "end": end }))
}

async fn redis_op(address: &str, op: &str, key: &str, value: &str) -> Result<Json, redis::Error> {
    let connection = redis::Connection::open(address).await?;
    let members = || value.split(',').map(String::from).collect::<Vec<_>>();
    Ok(match op {
        "set" => {
            connection.set(key, value.as_bytes()).await?;
            Json::Null
        }
        "get" => utf8(connection.get(key).await?),
        "incr" => connection.incr(key).await?.into(),
        "del" => connection.del([key]).await?.into(),
        "sadd" => connection.sadd(key, members()).await?.into(),
        "srem" => connection.srem(key, members()).await?.into(),
        "smembers" => {
            let mut members = connection.smembers(key).await?;
            members.sort();
            members.into()
        }
        "publish" => {
            connection.publish(key, value.as_bytes()).await?;
            Json::Null
        }
        // `execute`: the command is `key`, its arguments `value` split on
        // spaces (numbers as integers).
        "execute" => {
            let arguments = value.split_whitespace().map(|a| match a.parse::<i64>() {
                Ok(i) => redis::RedisParameter::Int64(i),
                Err(_) => redis::RedisParameter::Binary(a.as_bytes().to_vec()),
            });
            connection
                .execute(key, arguments)
                .await?
                .into_iter()
                .map(|r| match r {
                    redis::RedisResult::Nil => Json::Null,
                    redis::RedisResult::Status(s) => serde_json::json!({ "status": s }),
                    redis::RedisResult::Int64(i) => serde_json::json!(i),
                    redis::RedisResult::Binary(b) => utf8(Some(b)),
                })
                .collect::<Vec<_>>()
                .into()
        }
        _ => "opened".into(),
    })
}

async fn mqtt_publish(
    address: &str,
    topic: &str,
    payload: &str,
    qos: &str,
) -> Result<Json, mqtt::Error> {
    let connection = mqtt::Connection::open(address, "", "", 30).await?;
    let qos = match qos {
        "0" => mqtt::Qos::AtMostOnce,
        "2" => mqtt::Qos::ExactlyOnce,
        _ => mqtt::Qos::AtLeastOnce,
    };
    connection
        .publish(topic, payload.as_bytes().to_vec(), qos)
        .await?;
    Ok("published".into())
}
