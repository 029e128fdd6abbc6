//! `waybill echo-sink`: a local webhook receiver for trying Waybill out. Prints one line
//! per delivery (id, type, subject, sequence, whether the signature verifies), answers 204.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::process::ExitCode;
use waybill_engine::signature::{self, SigningKey};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Verify signatures with this `whsec_…` secret.
    #[arg(long, env = "WAYBILL_SINK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Answer with this status instead of 204 (to watch retries and the DLQ).
    #[arg(long, default_value_t = 204)]
    status: u16,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let key = match &a.secret {
        Some(s) => Some(SigningKey::parse(s).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let status = StatusCode::from_u16(a.status)?;
    let app = axum::Router::new().fallback(move |h: HeaderMap, body: Bytes| {
        let key = key.clone();
        async move {
            let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
            let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let verified = match &key {
                None => "unchecked",
                Some(k) => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    match signature::verify(
                        std::slice::from_ref(k),
                        get("webhook-id"),
                        get("webhook-timestamp"),
                        get("webhook-signature"),
                        &body,
                        now,
                    ) {
                        Ok(()) => "valid",
                        Err(_) => "INVALID",
                    }
                }
            };
            println!(
                "{} {} {} seq={} signature={verified}",
                get("webhook-id").unwrap_or("-"),
                j["type"].as_str().unwrap_or("-"),
                j["subject"].as_str().unwrap_or("-"),
                j["sequence"].as_str().unwrap_or("-"),
            );
            status
        }
    });
    let l = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", a.listen))?;
    eprintln!("echo-sink listening on http://{}", a.listen);
    axum::serve(l, app).await?;
    Ok(ExitCode::SUCCESS)
}
