//! `waybill replay`: put dead letters back into delivery through a running hub's API
//! (the hub's dispatchers pick them up at once).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Base URL of the running hub.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "WAYBILL_URL")]
    hub: String,
    /// API key (the value; or set WAYBILL_API_KEY).
    #[arg(long, env = "WAYBILL_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Dead-letter ids to replay (repeatable); without ids, every unreplayed one.
    #[arg(long = "id")]
    ids: Vec<i64>,
    /// Only dead letters of this sink (when no ids are given).
    #[arg(long)]
    sink: Option<String>,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let body = if a.ids.is_empty() {
        serde_json::json!({ "all": true, "sink": a.sink })
    } else {
        serde_json::json!({ "ids": a.ids })
    };
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v1/dead-letters/replay",
            a.hub.trim_end_matches('/')
        ))
        .bearer_auth(&a.api_key)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status.is_success() {
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("hub answered {status}: {text}");
        Ok(ExitCode::FAILURE)
    }
}
