//! `waybill keys create|list|revoke`: the hub's API keys, straight in the store of a
//! configuration (the hub may be running). A created key is printed once; the store keeps
//! its SHA-256 only.

use std::path::PathBuf;
use std::process::ExitCode;
use waybill_store::keys::NewKey;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Create a key and print it (once).
    Create(CreateArgs),
    /// List the keys (never the keys themselves).
    List(ConfigOnly),
    /// Revoke a key by id (the part after `wbk_`, before the second `_`).
    Revoke(RevokeArgs),
}

#[derive(clap::Args)]
struct ConfigOnly {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// A name for people.
    #[arg(long)]
    name: String,
    /// A scope (repeat): read, read:pii, operate, events:write, ingest:<source>, admin.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Bind the key to a tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// RFC 3339 time it stops working.
    #[arg(long)]
    expires_at: Option<String>,
}

#[derive(clap::Args)]
struct RevokeArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// The key's id.
    id: String,
}

/// Runs the verb.
pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let config = match &a.what {
        What::Create(c) => &c.config,
        What::List(c) => &c.config,
        What::Revoke(c) => &c.config,
    };
    let cfg = waybill::Config::load(config)?;
    let store = waybill::open_store(&cfg).await?;
    let code = match a.what {
        What::Create(c) => {
            let (scopes, expires_at) =
                match waybill_api::check_key_request(&c.name, &c.scopes, c.expires_at.as_deref()) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("waybill keys create: {e}");
                        store.close().await;
                        return Ok(ExitCode::from(2));
                    }
                };
            let (id, key, hash) = waybill_api::auth::new_key();
            let rec = store
                .key_create(NewKey {
                    id,
                    name: c.name.trim().to_owned(),
                    hash,
                    scopes,
                    tenant: c.tenant,
                    expires_at,
                    created_by: "cli".into(),
                })
                .await?
                .ok_or_else(|| anyhow::anyhow!("a new key's random id is taken; try again"))?;
            eprintln!(
                "key {} `{}` created with scopes {}; it is shown once, keep it now:",
                rec.id,
                rec.name,
                rec.scopes.join(", ")
            );
            println!("{key}");
            ExitCode::SUCCESS
        }
        What::List(_) => {
            for k in store.keys().await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if !k.live(time::OffsetDateTime::now_utc()) {
                    "expired"
                } else {
                    "live"
                };
                let when = |t: Option<time::OffsetDateTime>| {
                    t.and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{}\t{}\t{}\t{}\ttenant={}\texpires={}\tlast_used={}",
                    k.id,
                    k.name,
                    state,
                    k.scopes.join(","),
                    k.tenant.as_deref().unwrap_or("-"),
                    when(k.expires_at),
                    when(k.last_used_at),
                );
            }
            ExitCode::SUCCESS
        }
        What::Revoke(r) => match store.key_revoke(&r.id).await? {
            Some(k) => {
                eprintln!("key {} `{}` revoked", k.id, k.name);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("waybill keys revoke: no key `{}`", r.id);
                ExitCode::from(1)
            }
        },
    };
    store.close().await;
    Ok(code)
}
