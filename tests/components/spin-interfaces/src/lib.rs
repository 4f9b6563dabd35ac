//! A component for testing the host, not part of the app: each path under
//! `/spin/` calls one of Spin's built-in interfaces with the query's
//! parameters and answers 200 with what it returned (JSON), or 409 with
//! the interface's error (its Debug form, e.g. `AccessDenied`).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, mqtt, redis, sqlite, sqlite3};

type Params = Vec<(String, String)>;

#[http_component]
fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let path = request
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let params: Params = form_urlencoded::parse(request.query().as_bytes())
        .into_owned()
        .collect();
    let p = |name: &str| param(&params, name);
    Ok(match path.as_str() {
        "/kv" => answer(kv(&p("store"), &p("op"), &p("key"), &p("value"))),
        "/sqlite" => answer(sqlite2(&p("db"), &p("sql"), &params)),
        "/sqlite3" => answer(sqlite_v3(&p("db"), &p("sql"), &params)),
        "/redis" => answer(redis_op(&p("addr"), &p("op"), &p("key"), &p("value"))),
        "/mqtt" => answer(mqtt_publish(
            &p("addr"),
            &p("topic"),
            &p("payload"),
            &p("qos"),
        )),
        _ => Response::new(404, "no such probe"),
    })
}

fn param(params: &Params, name: &str) -> String {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn answer<E: std::fmt::Debug>(result: Result<serde_json::Value, E>) -> Response {
    match result {
        Ok(value) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(value.to_string())
            .build(),
        Err(e) => Response::new(409, format!("{e:?}")),
    }
}

fn kv(
    label: &str,
    op: &str,
    key: &str,
    value: &str,
) -> Result<serde_json::Value, key_value::Error> {
    let store = key_value::Store::open(label)?;
    Ok(match op {
        "set" => {
            store.set(key, value.as_bytes())?;
            serde_json::Value::Null
        }
        "get" => store
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .into(),
        "delete" => {
            store.delete(key)?;
            serde_json::Value::Null
        }
        "exists" => store.exists(key)?.into(),
        "keys" => {
            let mut keys = store.get_keys()?;
            keys.sort();
            keys.into()
        }
        _ => "opened".into(),
    })
}

/// Statement parameters: `arg=i:<n>`, `arg=r:<x>`, `arg=t:<text>`,
/// `arg=b:<text as bytes>` or `arg=null`, in order.
fn args(params: &Params) -> Vec<(char, String)> {
    params
        .iter()
        .filter(|(k, _)| k == "arg")
        .map(|(_, v)| match v.split_once(':') {
            Some((kind, value)) => (kind.chars().next().unwrap_or('t'), value.to_string()),
            None => ('n', String::new()),
        })
        .collect()
}

macro_rules! sql_values {
    ($module:ident, $params:expr) => {
        args($params)
            .into_iter()
            .map(|(kind, v)| match kind {
                'i' => $module::Value::Integer(v.parse().unwrap_or_default()),
                'r' => $module::Value::Real(v.parse().unwrap_or_default()),
                'b' => $module::Value::Blob(v.into_bytes()),
                't' => $module::Value::Text(v),
                _ => $module::Value::Null,
            })
            .collect::<Vec<_>>()
    };
}

macro_rules! rows_json {
    ($module:ident, $result:expr) => {{
        let rows: Vec<serde_json::Value> = $result
            .rows
            .iter()
            .map(|row| {
                row.values
                    .iter()
                    .map(|v| match v {
                        $module::Value::Integer(i) => serde_json::json!(i),
                        $module::Value::Real(f) => serde_json::json!(f),
                        $module::Value::Text(s) => serde_json::json!(s),
                        $module::Value::Blob(b) => serde_json::json!({ "blob": b }),
                        $module::Value::Null => serde_json::Value::Null,
                    })
                    .collect()
            })
            .collect();
        serde_json::json!({ "columns": $result.columns, "rows": rows })
    }};
}

fn sqlite2(db: &str, sql: &str, params: &Params) -> Result<serde_json::Value, sqlite::Error> {
    let connection = sqlite::Connection::open(db)?;
    let result = connection.execute(sql, &sql_values!(sqlite, params))?;
    Ok(rows_json!(sqlite, result))
}

fn sqlite_v3(db: &str, sql: &str, params: &Params) -> Result<serde_json::Value, sqlite3::Error> {
    let connection = sqlite3::Connection::open(db)?;
    let result = connection.execute(sql, &sql_values!(sqlite3, params))?;
    let mut json = rows_json!(sqlite3, result);
    json["changes"] = connection.changes().into();
    json["last_insert_rowid"] = connection.last_insert_rowid().into();
    Ok(json)
}

fn redis_op(
    address: &str,
    op: &str,
    key: &str,
    value: &str,
) -> Result<serde_json::Value, redis::Error> {
    let connection = redis::Connection::open(address)?;
    let members = || value.split(',').map(String::from).collect::<Vec<_>>();
    Ok(match op {
        "set" => {
            connection.set(key, value.as_bytes())?;
            serde_json::Value::Null
        }
        "get" => connection
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .into(),
        "incr" => connection.incr(key)?.into(),
        "del" => connection.del(&[key.to_string()])?.into(),
        "sadd" => connection.sadd(key, &members())?.into(),
        "srem" => connection.srem(key, &members())?.into(),
        "smembers" => {
            let mut members = connection.smembers(key)?;
            members.sort();
            members.into()
        }
        "publish" => {
            connection.publish(key, value.as_bytes())?;
            serde_json::Value::Null
        }
        // `execute`: the command is `key`, its arguments `value` split on
        // spaces (numbers as integers).
        "execute" => {
            let arguments: Vec<redis::RedisParameter> = value
                .split_whitespace()
                .map(|a| match a.parse::<i64>() {
                    Ok(i) => redis::RedisParameter::Int64(i),
                    Err(_) => redis::RedisParameter::Binary(a.as_bytes().to_vec()),
                })
                .collect();
            let results = connection.execute(key, &arguments)?;
            results
                .into_iter()
                .map(|r| match r {
                    redis::RedisResult::Nil => serde_json::Value::Null,
                    redis::RedisResult::Status(s) => serde_json::json!({ "status": s }),
                    redis::RedisResult::Int64(i) => serde_json::json!(i),
                    redis::RedisResult::Binary(b) => {
                        String::from_utf8_lossy(&b).into_owned().into()
                    }
                })
                .collect::<Vec<_>>()
                .into()
        }
        _ => "opened".into(),
    })
}

fn mqtt_publish(
    address: &str,
    topic: &str,
    payload: &str,
    qos: &str,
) -> Result<serde_json::Value, mqtt::Error> {
    let connection = mqtt::Connection::open(address, "", "", 30)?;
    let qos = match qos {
        "0" => mqtt::Qos::AtMostOnce,
        "2" => mqtt::Qos::ExactlyOnce,
        _ => mqtt::Qos::AtLeastOnce,
    };
    connection.publish(topic, payload.as_bytes(), qos)?;
    Ok("published".into())
}
