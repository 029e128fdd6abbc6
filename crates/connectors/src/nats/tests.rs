//! Against the real nats-server with JetStream at `NATS_URL` (default
//! `nats://127.0.0.1:4222`; `.ci/run` starts it when it is down).
#![allow(clippy::unwrap_used)]

use super::*;
use std::sync::Arc;
use std::time::Duration;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A name no other run uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("wbt{tag}{}x{nanos}", std::process::id())
}

fn config(url: String, prefix: &str) -> NatsSinkConfig {
    NatsSinkConfig {
        url,
        subject_prefix: prefix.into(),
        token: None,
        user: None,
        password: None,
        nkey: None,
        credentials: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        timeout: Duration::from_secs(2),
        concurrency: None,
    }
}

fn delivery(id: &str, ty: &str, shipment: &str) -> Delivery {
    let mut d = Delivery::new(
        id,
        shipment,
        Arc::from(
            format!(r#"{{"specversion":"1.0","id":"{id}","type":"{ty}","subject":"{shipment}"}}"#)
                .as_str(),
        ),
    );
    d.event_type = ty.into();
    d
}

async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(nats_url()).await.unwrap_or_else(|e| {
        panic!(
            "NATS with JetStream must run at {} for these tests (.ci/run starts it): {e}",
            nats_url()
        )
    });
    async_nats::jetstream::new(client)
}

#[test]
fn subjects_are_prefix_type_and_a_safe_partition_key() {
    let s = NatsSink::build(&config(nats_url(), "waybill")).unwrap();
    assert_eq!(
        s.subject("shipment.delivered", "SO-42"),
        "waybill.shipment.delivered.SO-42"
    );
    assert_eq!(
        s.subject("shipment.in_transit", "odoo:WH/OUT 7.*>"),
        "waybill.shipment.in_transit.odoo_WH_OUT_7___"
    );
    assert_eq!(s.subject("order.released", ""), "waybill.order.released._");
}

#[test]
fn bad_configuration_is_reported_with_its_path() {
    let mut c = config("http://x".into(), "a..b");
    c.user = Some("u".into());
    c.timeout = Duration::ZERO;
    let errs = NatsSink::build(&c).err().unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for p in ["url", "subject_prefix", "", "timeout"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
}

/// NKey, credentials and TLS settings are checked when read: a seed that is not one,
/// credentials that are not a credentials file, two ways at once, missing TLS files, a
/// certificate without its key.
#[test]
fn nkey_credentials_and_tls_settings_are_checked() {
    let plain = |v: &str| Some(waybill_engine::secret::SecretRef(format!("plain:{v}")));
    let mut c = config(nats_url(), "waybill");
    c.nkey = plain("SUNOTASEED");
    c.tls_ca = Some("/nonexistent/ca.pem".into());
    c.tls_cert = Some("/nonexistent/cert.pem".into());
    let errs = NatsSink::build(&c).err().unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for p in ["nkey", "tls_ca", "tls_cert"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let mut c = config(nats_url(), "waybill");
    c.credentials = plain("not a creds file");
    let errs = NatsSink::build(&c).err().unwrap();
    assert!(errs.iter().any(|e| e.path == "credentials"), "{errs:?}");
    let seed = nkeys::KeyPair::new_user().seed().unwrap();
    let mut c = config(nats_url(), "waybill");
    c.nkey = plain(&seed);
    c.token = plain("t0ken");
    let errs = NatsSink::build(&c).err().unwrap();
    assert!(
        errs.iter().any(|e| e.path.is_empty()),
        "two ways at once: {errs:?}"
    );
    c.token = None;
    assert!(NatsSink::build(&c).is_ok(), "a real seed alone is fine");
}

/// Each event becomes one stream message with its id as `Nats-Msg-Id`; delivering it
/// again (a retry after a lost acknowledgement) stores nothing more.
#[tokio::test]
async fn each_event_is_one_message_and_a_repeat_is_dropped_by_jetstream() {
    let prefix = unique("pub");
    let js = jetstream().await;
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: prefix.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let sink = NatsSink::build(&config(nats_url(), &prefix)).unwrap();
    let events = [
        delivery("evt-1", "shipment.dispatched", "SO-1"),
        delivery("evt-2", "shipment.delivered", "SO-1"),
        delivery("evt-3", "shipment.delivered", "SO 2"),
    ];
    for e in &events {
        sink.deliver(e).await.unwrap();
    }
    sink.deliver(&events[0]).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 3, "the repeat was dropped");
    let first = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        first.subject.as_str(),
        format!("{prefix}.shipment.dispatched.SO-1")
    );
    assert_eq!(
        first
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str()),
        Some("evt-1")
    );
    assert_eq!(
        first.headers.get("Content-Type").map(|v| v.as_str()),
        Some("application/cloudevents+json")
    );
    assert_eq!(&first.payload[..], events[0].body().as_bytes());
    let third = stream.get_raw_message(3).await.unwrap();
    assert_eq!(
        third.subject.as_str(),
        format!("{prefix}.shipment.delivered.SO_2")
    );
    js.delete_stream(&prefix).await.unwrap();
}

/// Without a stream for the subject, or without a server, the attempt fails with a
/// retryable code: the event waits in the outbox like for a webhook receiver that is down.
#[tokio::test]
async fn no_stream_or_no_server_is_a_retryable_failure_with_its_code() {
    let sink = NatsSink::build(&config(nats_url(), &unique("none"))).unwrap();
    let e = sink
        .deliver(&delivery("evt-1", "shipment.delivered", "SO-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.kind),
        (NO_STREAM, FailureKind::Retryable),
        "{e:?}"
    );
    let down = NatsSink::build(&config("nats://127.0.0.1:1".into(), "waybill")).unwrap();
    let e = down
        .deliver(&delivery("evt-1", "shipment.delivered", "SO-1"))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.kind), (CONNECT, FailureKind::Retryable), "{e:?}");
}

#[test]
fn a_source_with_bad_settings_is_reported_with_its_paths() {
    let cfg = NatsSourceConfig {
        url: "nats://127.0.0.1:4222".into(),
        stream: "bad.name".into(),
        consumer: Some("has space".into()),
        filter_subject: None,
        mapping: Some("{type: .a,".into()),
        token: None,
        user: None,
        password: None,
        nkey: None,
        credentials: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        timeout: Duration::from_secs(1),
        in_flight: 0,
    };
    let errs = NatsSource::build("bus", &cfg).err().unwrap();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for p in ["stream", "consumer", "mapping", "in_flight"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let ok = NatsSourceConfig {
        stream: "PARTNER".into(),
        consumer: None,
        mapping: None,
        in_flight: 64,
        ..cfg
    };
    assert_eq!(NatsSource::build("bus", &ok).unwrap().name(), "bus");
}
