#![allow(clippy::unwrap_used)]

use super::*;
use std::sync::Arc;
use waybill_engine::secret::SecretRef;
use waybill_testkit::FakePartner;

const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtMTIzNA==";

fn item() -> Delivery {
    Delivery::new(
        "evt-1",
        "S1",
        Arc::from(r#"{"id":"evt-1","type":"shipment.delivered"}"#),
    )
}

fn sink(url: String, timeout: Duration) -> HttpWebhook {
    HttpWebhook::build(&HttpWebhookConfig {
        url,
        secret: Some(SecretRef(format!("plain:{SECRET}"))),
        timeout,
        concurrency: None,
        headers: [("x-tenant".to_string(), "acme".to_string())].into(),
        batch: 1,
        max_requests_per_second: None,
        burst: None,
    })
    .unwrap()
}

#[tokio::test]
async fn delivers_the_exact_body_with_standard_webhooks_headers() {
    let fake = FakePartner::start().await;
    let s = sink(fake.url("hook"), Duration::from_secs(2));
    s.deliver(&item()).await.unwrap();
    let r = &fake.requests()[0];
    assert_eq!(r.body, item().body().as_bytes());
    assert_eq!(r.header("webhook-id"), Some("evt-1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(r.header("x-tenant"), Some("acme"));
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let key = SigningKey::parse(SECRET).unwrap();
    assert_eq!(
        waybill_engine::signature::verify(
            &[key],
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
            ts
        ),
        Ok(())
    );
}

#[tokio::test]
async fn answers_are_classified() {
    let fake = FakePartner::start().await;
    let s = sink(fake.url("hook"), Duration::from_millis(300));
    for (status, kind) in [
        (400, FailureKind::Permanent),
        (401, FailureKind::Auth),
        (403, FailureKind::Auth),
        (404, FailureKind::Permanent),
        (408, FailureKind::Retryable),
        (429, FailureKind::Retryable),
        (500, FailureKind::Retryable),
        (503, FailureKind::Retryable),
        (301, FailureKind::Retryable),
    ] {
        fake.fail_next(1, status);
        let e = s.deliver(&item()).await.unwrap_err();
        assert_eq!((status, e.kind, e.gone), (status, kind, false));
    }
    fake.fail_next(1, 410);
    assert!(s.deliver(&item()).await.unwrap_err().gone);
    fake.answer_next_with_retry_after(429, "120");
    assert_eq!(
        s.deliver(&item()).await.unwrap_err().retry_after,
        Some(Duration::from_secs(120))
    );
    // a slow receiver times out: retryable
    fake.set_delay(Duration::from_secs(1));
    let e = s.deliver(&item()).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Retryable);
    assert!(e.message.contains("timed out"), "{}", e.message);
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = sink(
        format!("http://127.0.0.1:{port}/hook"),
        Duration::from_secs(1),
    );
    let e = s.deliver(&item()).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Retryable);
    assert!(
        !e.message.contains("127.0.0.1"),
        "no URL in messages: {}",
        e.message
    );
}

#[test]
fn bad_configuration_is_reported_with_its_path() {
    let errs = HttpWebhook::build(&HttpWebhookConfig {
        url: "ftp://x".into(),
        secret: Some(SecretRef("plain:nope".into())),
        timeout: Duration::from_secs(1),
        concurrency: None,
        headers: Default::default(),
        batch: 0,
        max_requests_per_second: Some(0.0),
        burst: Some(0),
    })
    .err()
    .unwrap();
    assert!(errs.iter().any(|e| e.path == "url"), "{errs:?}");
    assert!(errs.iter().any(|e| e.path == "secret"), "{errs:?}");
    assert!(errs.iter().any(|e| e.path == "batch"), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.path == "max_requests_per_second"),
        "{errs:?}"
    );
}

#[test]
fn a_request_rate_is_offered_to_the_dispatcher_with_a_burst_of_one_by_default() {
    let cfg = |rate: Option<f64>, burst: Option<u32>| HttpWebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        secret: None,
        timeout: Duration::from_secs(1),
        concurrency: None,
        headers: Default::default(),
        batch: 1,
        max_requests_per_second: rate,
        burst,
    };
    let limit = |c| HttpWebhook::build(&c).unwrap().rate_limit();
    assert_eq!(limit(cfg(None, None)), None);
    assert_eq!(limit(cfg(Some(10.0), None)), Some(RateLimit::new(10.0, 1)));
    assert_eq!(
        limit(cfg(Some(10.0), Some(5))),
        Some(RateLimit::new(10.0, 5))
    );
    let errs = HttpWebhook::build(&cfg(None, Some(5))).err().unwrap();
    assert_eq!(errs[0].path, "burst");
    let errs = HttpWebhook::build(&cfg(Some(1.0), Some(0))).err().unwrap();
    assert_eq!(errs[0].path, "burst");
}

fn batching_sink(url: String) -> HttpWebhook {
    HttpWebhook::build(&HttpWebhookConfig {
        url,
        secret: Some(SecretRef(format!("plain:{SECRET}"))),
        timeout: Duration::from_secs(2),
        concurrency: None,
        headers: Default::default(),
        batch: 10,
        max_requests_per_second: None,
        burst: None,
    })
    .unwrap()
}

fn event(n: usize) -> Delivery {
    Delivery::new(
        format!("evt-{n}"),
        "S1",
        Arc::from(
            format!(r#"{{"id":"evt-{n}","type":"shipment.in_transit","sequence":"{n}"}}"#).as_str(),
        ),
    )
}

/// A batching sink sends consecutive events as one CloudEvents batch: a JSON array of the
/// exact bodies in order, signed, with an id naming the first event and the count.
#[tokio::test]
async fn a_batching_sink_sends_one_signed_cloudevents_batch() {
    let fake = FakePartner::start().await;
    let s = batching_sink(fake.url("hook"));
    assert_eq!(s.batching().max, 10);
    let items: Vec<Delivery> = (1..=3).map(event).collect();
    let out = s.deliver_batch(&items).await;
    assert_eq!((out.delivered, out.error.is_none()), (3, true));
    let got = fake.requests();
    assert_eq!(got.len(), 1, "one request");
    let r = &got[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents-batch+json")
    );
    assert_eq!(r.header("webhook-id"), Some("evt-1+3"));
    let expected = format!(
        "[{},{},{}]",
        items[0].body(),
        items[1].body(),
        items[2].body()
    );
    assert_eq!(r.body, expected.as_bytes());
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        waybill_engine::signature::verify(
            &[SigningKey::parse(SECRET).unwrap()],
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
            ts
        ),
        Ok(())
    );
    // One event alone is a batch of one with its own id.
    s.deliver(&items[0]).await.unwrap();
    let r = &fake.requests()[1];
    assert_eq!(r.header("webhook-id"), Some("evt-1"));
    assert_eq!(r.body, format!("[{}]", items[0].body()).as_bytes());
    // A failed batch delivered none of its events.
    fake.fail_next(1, 503);
    let out = s.deliver_batch(&items).await;
    assert_eq!(out.delivered, 0);
    assert_eq!(out.error.map(|e| e.kind), Some(FailureKind::Retryable));
}
