//! `waybill audit verify|list|anchor`: the hash-chained audit trail, read straight from the
//! store of a configuration (the hub may be running).
//!
//! `verify` walks the whole chain and exits 0 when it is intact ("audit chain ok: N
//! records, head <hash>"), 1 naming the first record that was altered, removed, inserted
//! or moved; with `--anchor FILE` (default: `[audit].anchor_file` when that file exists)
//! every anchored head must still be in the chain with the same hash.

use std::path::PathBuf;
use std::process::ExitCode;
use waybill::Config;
use waybill_store::audit::{AuditQuery, AuditVerdict, EventsVerdict, AUDIT_PAGE};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Check the whole chain (and the anchors); exit 1 naming the first bad record.
    Verify(VerifyArgs),
    /// Print records in order, one a line.
    List(ListArgs),
    /// Append the chain's head to the anchor file now.
    Anchor(AnchorArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Anchor file to check against (default: `[audit].anchor_file`, when it exists).
    #[arg(long)]
    anchor: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Only records after this seq.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Only this action.
    #[arg(long)]
    action: Option<String>,
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
    /// JSON, one record a line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AnchorArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "waybill.toml", env = "WAYBILL_CONFIG")]
    config: PathBuf,
    /// Anchor file (default: `[audit].anchor_file`).
    #[arg(long)]
    anchor: Option<PathBuf>,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.what {
        What::Verify(a) => verify(a).await,
        What::List(a) => list(a).await,
        What::Anchor(a) => anchor(a).await,
    }
}

async fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let anchor_file = a
        .anchor
        .or_else(|| cfg.audit.anchor_file.clone().filter(|p| p.exists()));
    let anchors = match &anchor_file {
        Some(p) => waybill::audit::read_anchors(p)?,
        None => Vec::new(),
    };
    let n_anchors = anchors.len();
    let store = waybill::open_store(&cfg).await?;
    let verdict = store.audit_verify_anchored(anchors).await;
    let base = store.audit_base().await;
    let events = match &verdict {
        Ok(AuditVerdict::Ok { .. }) => Some(store.verify_events().await),
        _ => None,
    };
    store.close().await;
    match verdict? {
        AuditVerdict::Ok {
            records, head_hash, ..
        } => {
            print!("audit chain ok: {records} records, head {head_hash}");
            if let Some((seq, hash)) = base? {
                print!(" (records up to seq {seq} purged by retention; base hash {hash})");
            }
            match &anchor_file {
                Some(p) => println!(" ({n_anchors} anchors of {} match)", p.display()),
                None => println!(),
            }
            match events.transpose()? {
                Some(EventsVerdict::Changed(c)) => {
                    println!(
                        "event log changed: the checkpoint at seq {} sealed {} events (rows {} to {}); {} are there now, or not as sealed",
                        c.checkpoint_seq,
                        c.events.0,
                        c.from + 1,
                        c.through,
                        c.events.1
                    );
                    Ok(ExitCode::FAILURE)
                }
                Some(EventsVerdict::Ok {
                    checkpoints,
                    events,
                }) => {
                    println!("event log ok: {events} events sealed by {checkpoints} checkpoints");
                    Ok(ExitCode::SUCCESS)
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
        AuditVerdict::Broken {
            first_bad_seq,
            kind,
            detail,
        } => {
            println!("audit chain broken at seq {first_bad_seq}: {kind}: {detail}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let store = waybill::open_store(&cfg).await?;
    let mut after = a.after;
    let mut left = a.limit;
    let result = async {
        while left > 0 {
            let page = store
                .audit(AuditQuery {
                    after_seq: after,
                    limit: u32::try_from(left.min(u64::from(AUDIT_PAGE))).unwrap_or(AUDIT_PAGE),
                    action: a.action.clone(),
                    target: a.target.clone(),
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            left = left.saturating_sub(page.len() as u64);
            for r in &page {
                if a.json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let at =
                        r.at.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default();
                    println!(
                        "{}\t{at}\t{}\t{}\t{}\t{}\t{}",
                        r.seq, r.actor, r.action, r.target, r.origin, r.detail
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn anchor(a: AnchorArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let Some(path) = a.anchor.or(cfg.audit.anchor_file.clone()) else {
        anyhow::bail!("no anchor file: give --anchor or set [audit].anchor_file");
    };
    let store = waybill::open_store(&cfg).await?;
    let r = waybill::audit::anchor_now(&store, &path).await;
    store.close().await;
    let a = r?;
    println!(
        "anchored seq {} head {} in {}",
        a.seq,
        a.hash,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
