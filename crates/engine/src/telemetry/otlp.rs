//! OTLP/HTTP export with the JSON encoding
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): batches of spans as an
//! `ExportTraceServiceRequest`, POSTed to `{endpoint}/v1/traces` by the caller's `post`.

use super::{AttrValue, SpanQueue, SpanRecord};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// How spans are batched and named.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The resource's `service.name`.
    pub service_name: String,
    /// Most spans in one request; a full batch is sent at once.
    pub batch_size: usize,
    /// Longest a finished span waits before its batch is sent.
    pub interval: Duration,
}

fn attr(key: &str, v: &AttrValue) -> Value {
    let value = match v {
        AttrValue::Str(s) => json!({"stringValue": s}),
        // int64 as a decimal string, as the protobuf JSON mapping writes it
        AttrValue::Int(n) => json!({"intValue": n.to_string()}),
    };
    json!({"key": key, "value": value})
}

fn span(s: &SpanRecord) -> Value {
    let mut v = json!({
        "traceId": format!("{:032x}", s.context.trace_id),
        "spanId": format!("{:016x}", s.context.span_id),
        "name": s.name,
        "kind": s.kind as i32,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": s.attributes.iter().map(|(k, v)| attr(k, v)).collect::<Vec<_>>(),
        "status": match &s.error {
            None => json!({"code": 0}),
            Some(m) => json!({"code": 2, "message": m}),
        },
    });
    if let Some(p) = s.parent {
        v["parentSpanId"] = json!(format!("{p:016x}"));
    }
    if let Some(ts) = &s.trace_state {
        v["traceState"] = json!(ts);
    }
    v
}

/// The JSON body of one export request.
pub fn encode(service_name: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                attr("service.name", &AttrValue::Str(service_name.to_owned())),
                attr("service.version", &AttrValue::Str(env!("CARGO_PKG_VERSION").to_owned())),
            ]},
            "scopeSpans": [{
                "scope": {"name": "waybill", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Reads finished spans from `queue` and hands them to `post` as encoded batches: when
/// `batch_size` are waiting, or `interval` after the last export. When `stop` resolves,
/// sends what is queued and returns. A failed export is logged and its spans dropped
/// (tracing never holds up the hub).
pub async fn run_exporter<P, F>(
    mut queue: SpanQueue,
    settings: ExportSettings,
    stop: impl Future<Output = ()>,
    mut post: P,
) where
    P: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), String>>,
{
    let batch = settings.batch_size.max(1);
    let mut buf: Vec<SpanRecord> = Vec::with_capacity(batch);
    let every = settings.interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_drops = 0;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            got = queue.recv() => match got {
                Some(s) => {
                    buf.push(s);
                    if buf.len() >= batch {
                        send(&settings, &mut buf, &mut post).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let dropped = queue.dropped();
                if dropped > reported_drops {
                    tracing::warn!(dropped = dropped - reported_drops, "trace spans dropped: the export queue was full");
                    reported_drops = dropped;
                }
                if !buf.is_empty() {
                    send(&settings, &mut buf, &mut post).await;
                }
            }
        }
    }
    while let Some(s) = queue.try_recv() {
        buf.push(s);
        if buf.len() >= batch {
            send(&settings, &mut buf, &mut post).await;
        }
    }
    if !buf.is_empty() {
        send(&settings, &mut buf, &mut post).await;
    }
}

async fn send<P, F>(settings: &ExportSettings, buf: &mut Vec<SpanRecord>, post: &mut P)
where
    P: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<(), String>>,
{
    let body = encode(&settings.service_name, buf);
    let n = buf.len();
    buf.clear();
    if let Err(e) = post(body).await {
        tracing::warn!(spans = n, error = %e, "cannot export trace spans; dropped");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{SpanKind, TraceContext, Tracer};
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn spans_are_encoded_as_otlp_json() {
        let (t, mut q) = Tracer::new(4);
        let parent =
            TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let mut s = t.start("deliver", SpanKind::Client, Some(&parent));
        s.attr("waybill.sink", "ops");
        s.attr("http.response.status_code", 503u16);
        s.fail("HTTP 503");
        let id = s.context().unwrap().span_id;
        s.end();
        let rec = q.try_recv().unwrap();
        let v: Value = serde_json::from_slice(&encode("hub", &[rec])).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "hub"
        );
        let sp = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(sp["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(sp["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(sp["spanId"], format!("{id:016x}"));
        assert_eq!(sp["kind"], 3);
        assert_eq!(sp["name"], "deliver");
        assert!(sp["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok());
        assert_eq!(sp["attributes"][1]["value"]["intValue"], "503");
        assert_eq!(sp["status"]["code"], 2);
        assert_eq!(sp["status"]["message"], "HTTP 503");
    }

    #[tokio::test(start_paused = true)]
    async fn batches_go_when_full_or_on_the_interval_and_everything_at_stop() {
        let (t, q) = Tracer::new(100);
        let posted: Arc<Mutex<Vec<usize>>> = Arc::default();
        let p = posted.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let settings = ExportSettings {
            service_name: "waybill".into(),
            batch_size: 3,
            interval: Duration::from_secs(5),
        };
        let exporter = tokio::spawn(run_exporter(
            q,
            settings,
            async {
                let _ = stop_rx.await;
            },
            move |body| {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let n = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .unwrap()
                    .len();
                p.lock().unwrap().push(n);
                async { Ok(()) }
            },
        ));
        for _ in 0..4 {
            t.start("ingest", SpanKind::Server, None).end();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            *posted.lock().unwrap(),
            vec![3],
            "a full batch goes at once"
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            *posted.lock().unwrap(),
            vec![3, 1],
            "the rest on the interval"
        );
        t.start("ingest", SpanKind::Server, None).end();
        stop_tx.send(()).unwrap();
        exporter.await.unwrap();
        assert_eq!(*posted.lock().unwrap(), vec![3, 1, 1], "flushed at stop");
    }
}
