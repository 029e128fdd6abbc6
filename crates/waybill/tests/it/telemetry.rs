//! Traces end to end: an in-process OTLP/HTTP receiver sees the spans of one event from
//! ingest to delivery under the trace of the partner's `traceparent`.

use crate::*;
use axum::routing::post;
use std::sync::{Arc, Mutex};
use waybill_testkit::FakePartner;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// The export requests received: (content type, body).
type Exports = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

/// Collects every `ExportTraceServiceRequest` POSTed to `/v1/traces`.
struct OtlpReceiver {
    url: String,
    requests: Exports,
}

impl OtlpReceiver {
    async fn start() -> OtlpReceiver {
        let requests: Exports = Arc::default();
        let got = requests.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let got = got.clone();
                    async move {
                        let ct = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        got.lock().unwrap().push((ct, v));
                        "{}"
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        OtlpReceiver { url, requests }
    }

    /// Every span received so far, with the resource's `service.name`.
    fn spans(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for (_, req) in self.requests.lock().unwrap().iter() {
            for rs in req["resourceSpans"].as_array().unwrap() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
                    .unwrap_or_default();
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }
}

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or(&serde_json::Value::Null)
}

/// Posts a signed carrier event with extra headers.
async fn send_with(
    hub: &TestHub,
    body: &serde_json::Value,
    id: &str,
    extra: &[(&str, &str)],
) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = SigningKey::parse(SECRET).unwrap().sign(id, ts, &bytes);
    let mut req = hub
        .client
        .post(format!("{}/v1/ingest/carrier", hub.base))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(bytes).send().await.unwrap().status().as_u16()
}

async fn start_hub(sink: &FakePartner, telemetry: &str) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n{telemetry}\n",
        config_toml(&dir.path().join("hub.db"), &sink.url("hook"), "")
    );
    let cfg = waybill::Config::parse(&text, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestHub::from_parts(cfg, listener, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_one_trace_from_ingest_to_delivery_continuing_the_partners() {
    let otlp = OtlpReceiver::start().await;
    let sink = FakePartner::start().await;
    let hub = start_hub(
        &sink,
        &format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"waybill-it\"\nexport_interval = \"50ms\"",
            otlp.url
        ),
    )
    .await;
    let incoming = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let ev = carrier_event("TR-1", "TRACE-1", "shipment.in_transit", 1);
    let status = send_with(
        &hub,
        &ev,
        "TR-1",
        &[
            ("traceparent", &incoming),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    assert_eq!(status, 202);
    sink.wait_until(WAIT, "the delivery", |got| !got.is_empty())
        .await;
    let names = ["ingest", "mapping", "append", "deliver"];
    let deadline = tokio::time::Instant::now() + WAIT;
    let spans = loop {
        let spans: Vec<(String, serde_json::Value)> = otlp
            .spans()
            .into_iter()
            .filter(|(_, s)| s["traceId"] == TRACE_ID)
            .collect();
        if names
            .iter()
            .all(|n| spans.iter().any(|(_, s)| s["name"] == *n))
        {
            break spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans not exported: {:?}",
            otlp.spans()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (content_type, _) in otlp.requests.lock().unwrap().iter() {
        assert_eq!(content_type.as_deref(), Some("application/json"));
    }
    let one = |name: &str| {
        let all: Vec<&serde_json::Value> = spans
            .iter()
            .filter(|(_, s)| s["name"] == name)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(all.len(), 1, "one {name} span: {all:?}");
        all[0].clone()
    };
    let (ingest, mapping, append, deliver) =
        (one("ingest"), one("mapping"), one("append"), one("deliver"));
    assert!(spans.iter().all(|(service, _)| service == "waybill-it"));
    // the partner's span is the ingest span's parent; the rest hang below it
    assert_eq!(ingest["parentSpanId"], PARENT_SPAN);
    assert_eq!(ingest["kind"], 2, "SERVER");
    assert_eq!(ingest["traceState"], "congo=t61rcWkgMzE");
    assert_eq!(attr(&ingest, "waybill.source")["stringValue"], "carrier");
    assert_eq!(attr(&ingest, "waybill.outcome")["stringValue"], "accepted");
    assert_eq!(attr(&ingest, "waybill.event_count")["intValue"], "1");
    let ingest_id = ingest["spanId"].as_str().unwrap();
    assert_eq!(ingest_id.len(), 16);
    assert_ne!(ingest_id, PARENT_SPAN);
    assert_eq!(mapping["parentSpanId"], ingest_id);
    assert_eq!(mapping["kind"], 1);
    assert_eq!(append["parentSpanId"], ingest_id);
    assert_eq!(append["kind"], 1);
    // the stored event names the ingest span; the delivery is its child
    assert_eq!(deliver["parentSpanId"], ingest_id);
    assert_eq!(deliver["kind"], 3, "CLIENT");
    assert_eq!(attr(&deliver, "waybill.sink")["stringValue"], "ops");
    assert_eq!(
        attr(&deliver, "waybill.subscription")["stringValue"],
        "ops-all"
    );
    assert_eq!(attr(&deliver, "waybill.attempt")["intValue"], "1");
    assert_eq!(
        attr(&deliver, "http.response.status_code")["intValue"],
        "200"
    );
    for s in [&ingest, &mapping, &append, &deliver] {
        let start: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && end >= start, "{s}");
        assert_eq!(s["status"]["code"], 0, "{s}");
    }
    // what the sink received: the event naming the ingest span, the request the deliver span
    let got = sink.accepted();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(
        body["traceparent"],
        format!("00-{TRACE_ID}-{ingest_id}-01").as_str()
    );
    assert_eq!(
        attr(&deliver, "waybill.event_id")["stringValue"],
        body["id"]
    );
    assert_eq!(
        got[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", deliver["spanId"].as_str().unwrap()).as_str())
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_telemetry_nothing_is_exported_and_only_a_partners_trace_is_carried() {
    let otlp = OtlpReceiver::start().await;
    let sink = FakePartner::start().await;
    // the receiver listens, but no [telemetry] names it
    let hub = start_hub(&sink, "").await;
    let plain = carrier_event("NT-1", "NOTRACE-1", "shipment.in_transit", 1);
    assert_eq!(send_with(&hub, &plain, "NT-1", &[]).await, 202);
    let incoming = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let traced = carrier_event("NT-2", "NOTRACE-2", "shipment.in_transit", 2);
    assert_eq!(
        send_with(&hub, &traced, "NT-2", &[("traceparent", &incoming)]).await,
        202
    );
    let bad = carrier_event("NT-3", "NOTRACE-3", "shipment.in_transit", 3);
    let invalid = format!("00-{}-{PARENT_SPAN}-01", "0".repeat(32));
    assert_eq!(
        send_with(&hub, &bad, "NT-3", &[("traceparent", &invalid)]).await,
        202
    );
    sink.wait_until(WAIT, "three deliveries", |got| got.len() >= 3)
        .await;
    let by_subject = |s: &str| {
        sink.accepted()
            .into_iter()
            .find(|r| r.json()["subject"] == s)
            .unwrap()
    };
    // no trace of its own: no id is made when tracing is off
    let r = by_subject("NOTRACE-1");
    assert!(r.json().get("traceparent").is_none());
    assert_eq!(r.header("traceparent"), None);
    // a partner's trace passes through, in the event and on the delivery
    let r = by_subject("NOTRACE-2");
    assert_eq!(r.json()["traceparent"], incoming.as_str());
    assert_eq!(r.header("traceparent"), Some(incoming.as_str()));
    // an invalid one is dropped
    let r = by_subject("NOTRACE-3");
    assert!(r.json().get("traceparent").is_none());
    assert_eq!(r.header("traceparent"), None);
    hub.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        otlp.requests.lock().unwrap().is_empty(),
        "nothing is exported without [telemetry]"
    );
}
