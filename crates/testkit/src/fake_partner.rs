//! A fake partner endpoint: records every request, answers from a script.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// Status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<(u16, Option<String>)>,
    default_status: u16,
    delay: Duration,
}

/// The fake partner server (port 0 on 127.0.0.1).
#[derive(Clone)]
pub struct FakePartner {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl FakePartner {
    /// Starts the server; it answers 200 unless scripted otherwise.
    pub async fn start() -> FakePartner {
        let state = Arc::new(Mutex::new(State {
            default_status: 200,
            ..Default::default()
        }));
        let st = state.clone();
        let app = Router::new().route(
            "/{*path}",
            post(move |headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move {
                    let (status, retry_after, delay) = {
                        let mut s = st.lock().unwrap();
                        let (code, ra) = s.script.pop_front().unwrap_or((s.default_status, None));
                        (code, ra, s.delay)
                    };
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let rec = Recorded {
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                        body: body.to_vec(),
                        status,
                    };
                    st.lock().unwrap().requests.push(rec);
                    let code =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    match retry_after {
                        Some(ra) => (code, [("retry-after", ra)]).into_response(),
                        None => code.into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePartner {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// URL of a path on the fake.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..n {
            s.script.push_back((status, None));
        }
    }

    /// Answers the next request with `status` and a `Retry-After` header.
    pub fn answer_next_with_retry_after(&self, status: u16, retry_after: &str) {
        self.state
            .lock()
            .unwrap()
            .script
            .push_back((status, Some(retry_after.into())));
    }

    /// Answers every unscripted request with `status` (e.g. 503 for an outage).
    pub fn set_default(&self, status: u16) {
        self.state.lock().unwrap().default_status = status;
    }

    /// Delays every answer.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits (real time) until `pred` holds over the accepted requests, or panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Recorded]) -> bool,
    ) {
        let end = std::time::Instant::now() + timeout;
        loop {
            if pred(&self.accepted()) {
                return;
            }
            if std::time::Instant::now() > end {
                panic!(
                    "timed out waiting for {what}: {} requests, {} accepted",
                    self.requests().len(),
                    self.accepted().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
