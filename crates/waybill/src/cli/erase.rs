//! `waybill erase`: right to erasure, straight on the store of a configuration — drops
//! the raw payloads of one shipment's events (or of every shipment a reference names) and
//! masks the personal values of their data, keeping the events and the shipment's state;
//! appends an `erasure` record (actor `cli`) to the audit trail and prints what changed.

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;
use waybill_store::audit::AuditEntry;
use waybill_store::retention::Erase;

/// Arguments.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["shipment", "reference"])))]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// The shipment's key (or the key of any of its lanes).
    #[arg(long)]
    shipment: Option<String>,
    /// A reference, `kind:value` (`tracking:1Z…`): every shipment it names.
    #[arg(long = "ref")]
    reference: Option<String>,
}

/// What to erase from the arguments, and the audit target naming it.
pub fn target(
    shipment: Option<String>,
    reference: Option<String>,
) -> anyhow::Result<(Erase, String)> {
    match (shipment, reference) {
        (Some(s), None) if !s.trim().is_empty() => {
            let t = format!("shipment:{s}");
            Ok((Erase::Shipment(s), t))
        }
        (None, Some(r)) => match r.split_once(':') {
            Some((kind, value)) if !kind.is_empty() && !value.is_empty() => Ok((
                Erase::Reference {
                    kind: kind.to_owned(),
                    value: value.to_owned(),
                },
                format!("ref:{r}"),
            )),
            _ => anyhow::bail!("--ref must be kind:value (e.g. tracking:1Z999AA10123456784)"),
        },
        _ => anyhow::bail!("give either --shipment or --ref"),
    }
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let (what, target) = target(a.shipment, a.reference)?;
    let personal = waybill_model::privacy::Personal::with(&cfg.privacy.personal_keys);
    let store = waybill::open_store(&cfg).await?;
    let result = async {
        let Some(report) = store.erase(what, personal).await? else {
            return Ok::<_, anyhow::Error>(None);
        };
        store
            .audit_append(AuditEntry {
                actor: "cli".into(),
                action: "erasure".into(),
                target: target.clone(),
                detail: serde_json::to_value(&report)?,
                origin: format!("host={}", hostname()),
            })
            .await?;
        Ok(Some(report))
    }
    .await;
    store.close().await;
    match result? {
        Some(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no shipment matches {target}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
