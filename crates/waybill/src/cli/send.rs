//! `waybill send`: post a payload file to a source of a running hub, authenticated the
//! way that source's configuration says (Standard Webhooks signature or API key).

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;
use waybill_connectors::SourceConfig;
use waybill_engine::ingest::AuthConfig;
use waybill_engine::secret::SecretRef;
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
    let mut url = format!("{}/v1/ingest/{}", hub.trim_end_matches('/'), a.source);
    let auth_of = |src: &SourceConfig| match src {
        SourceConfig::Jq(c) => Some(c.auth.clone()),
        SourceConfig::X12(c) => Some(c.auth.clone()),
        _ => None,
    };
    if let Some(AuthConfig::UrlToken { tokens }) = auth_of(src) {
        let first = tokens
            .first()
            .ok_or_else(|| anyhow::anyhow!("source has no token"))?;
        let token = first
            .resolve()
            .map_err(|e| anyhow::anyhow!("sources.{}.auth.tokens[0]: {e}", a.source))?;
        url = format!("{url}/{}", token.expose());
    }
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    let resolve = |r: &SecretRef, what: &str| {
        r.resolve()
            .map_err(|e| anyhow::anyhow!("sources.{}.{what}: {e}", a.source))
    };
    let auth = match src {
        SourceConfig::Jq(c) => Some(&c.auth),
        SourceConfig::X12(c) => Some(&c.auth),
        _ => None,
    };
    match (auth, src) {
        (Some(AuthConfig::StandardWebhooks { secrets }), _) => {
            let first = secrets
                .first()
                .ok_or_else(|| anyhow::anyhow!("source has no secret"))?;
            let key = SigningKey::parse(resolve(first, "auth.secrets[0]")?.expose())
                .map_err(|e| anyhow::anyhow!(e))?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            req = req
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", key.sign(&id, ts, &body));
        }
        (Some(AuthConfig::ApiKey { keys }), _) => {
            let first = keys
                .first()
                .ok_or_else(|| anyhow::anyhow!("source has no key"))?;
            req = req
                .bearer_auth(resolve(first, "auth.keys[0]")?.expose())
                .header("idempotency-key", &id);
        }
        (None, src) if src.carrier().is_some() => {
            if let Some((format, c)) = src.carrier() {
                let secret = resolve(&c.secret, "secret")?;
                req = req.header(
                    format.signature_header(),
                    format.sign(&body, secret.expose()),
                );
            }
        }
        (Some(AuthConfig::UrlToken { .. }), _) => {}
        (Some(AuthConfig::HubKeys {}), _) => {
            let key = std::env::var("WAYBILL_INGEST_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "source `{0}` takes hub keys: set WAYBILL_INGEST_KEY to a key with scope ingest:{0}",
                    a.source
                )
            })?;
            req = req.bearer_auth(key).header("idempotency-key", &id);
        }
        (None, _) => anyhow::bail!(
            "source `{}` has no authentication waybill send knows",
            a.source
        ),
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
