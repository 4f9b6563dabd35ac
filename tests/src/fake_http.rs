//! A local HTTP server standing in for a third-party API (a payment
//! provider, a mail service): it records each request and answers with
//! what the test's `answer` function says. Never the internet.

use std::sync::{Arc, Mutex};

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's fields, when it is form-encoded.
    pub form: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A field of a form-encoded body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

pub type Answer = fn(&Recorded, &[Recorded]) -> (u16, serde_json::Value);

pub struct FakeHttp {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeHttp {
    /// Starts on a free loopback port. `answer` sees the request and the
    /// ones before it (for "fail the first time" behaviour).
    pub fn start(answer: Answer) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let r = Recorded {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect(),
                    form: form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect(),
                    body,
                };
                let (status, json) = {
                    let mut all = recorded.lock().unwrap();
                    let answered = answer(&r, &all);
                    all.push(r);
                    answered
                };
                // A JSON string is answered as plain text (PayFast's `VALID`).
                let (body, content_type) = match &json {
                    serde_json::Value::String(text) => (text.clone(), "text/plain"),
                    other => (other.to_string(), "application/json"),
                };
                let response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(
                        format!("content-type: {content_type}")
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                let _ = request.respond(response);
            }
        });
        Self { url, requests }
    }

    /// The requests to `path` (whatever their query) so far.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}
