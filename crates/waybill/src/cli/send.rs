//! `waybill send`: post a payload file to a source of a running hub, authenticated the
//! way that source's configuration says (Standard Webhooks signature or API key).

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;
use waybill_engine::ingest::AuthConfig;
use waybill_engine::signature::SigningKey;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file that declares the source (its secret is used to sign).
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Source name.
    #[arg(long)]
    source: String,
    /// Hub base URL (default: the configured listen address).
    #[arg(long)]
    hub: Option<String>,
    /// `webhook-id` to send (default: derived from the file's content, so a re-send is a duplicate).
    #[arg(long)]
    id: Option<String>,
    /// The payload file.
    file: PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let src = cfg
        .sources
        .get(&a.source)
        .ok_or_else(|| anyhow::anyhow!("{}: no source named `{}`", a.config.display(), a.source))?;
    let body = std::fs::read(&a.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.file.display()))?;
    let hub = a
        .hub
        .unwrap_or_else(|| format!("http://{}", cfg.server.listen));
    let id =
        a.id.unwrap_or_else(|| format!("msg_{}", &waybill_model::ids::content_hash(&body)[..24]));
    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/v1/ingest/{}",
            hub.trim_end_matches('/'),
            a.source
        ))
        .header("content-type", "application/json");
    match &src.auth {
        AuthConfig::StandardWebhooks { secrets } => {
            let secret = secrets
                .first()
                .ok_or_else(|| anyhow::anyhow!("source has no secret"))?
                .resolve()
                .map_err(|e| anyhow::anyhow!("sources.{}.auth.secrets[0]: {e}", a.source))?;
            let key = SigningKey::parse(secret.expose()).map_err(|e| anyhow::anyhow!(e))?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            req = req
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", key.sign(&id, ts, &body));
        }
        AuthConfig::ApiKey { keys } => {
            let key = keys
                .first()
                .ok_or_else(|| anyhow::anyhow!("source has no key"))?
                .resolve()
                .map_err(|e| anyhow::anyhow!("sources.{}.auth.keys[0]: {e}", a.source))?;
            req = req.bearer_auth(key.expose()).header("idempotency-key", &id);
        }
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    eprintln!("HTTP {status}");
    println!("{text}");
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
