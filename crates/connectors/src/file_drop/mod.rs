//! `file_drop`: a directory partners drop files into — CSV shipment confirmations from a
//! 3PL, X12 interchanges from an EDI gateway (SFTP/AS2 delivering into a folder).
//!
//! X12 (`*.edi`, `*.x12`, when `formats` has `"x12"`): the interchange is parsed and mapped
//! as on the HTTP `x12` source; the 997 acknowledging (or rejecting) it is written beside
//! the moved file as `<file>.997`, for the gateway to pick up (with a TA1 inside when
//! ISA14 asked for one; a TA1 alone, `<file>.ta1`, when the envelope itself failed).
//!
//! CSV (`*.csv`, when `formats` has `"csv"`, the default): each file is read once: every row becomes a JSON object (header →
//! value, plus `_file` and `_line`) that the source's jq `mapping` turns into event
//! drafts, exactly like an HTTP payload. Good rows are imported as one payload; each bad
//! row is kept as a rejected inbox record and listed, with file and line number, in an
//! error report. The file then moves to `done/` (at least one good row) or `failed/`
//! (none), with the report beside it as `<file>.errors.txt`.
//!
//! Once across restarts: the payload's idempotency key is the SHA-256 of the file's
//! content, so a file re-read after a crash (before it was moved) is a duplicate and
//! imports nothing twice. Writers should create files under another name (e.g. `.tmp`)
//! and rename them to `.csv` when complete: only `*.csv` names are read.
//! A row's timed status (a milestone or flag with a `time`) is identified by its fact
//! (`waybill_model::fact_key`): the same status in another file, or over HTTP, is the same
//! event. Other drafts without a key get `<file hash>:<line>`, so every row's event id is
//! stable.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::partner::{Mapped, Rejection};
use waybill_engine::{Hub, IngestReply, Received};
use waybill_mapping::{Payload, Program};
use waybill_model::EventDraft;
use waybill_model::{Code, CodeClass};

/// `csv.bad_header`: the header line cannot be read; nothing is imported.
pub const CSV_BAD_HEADER: Code = Code::new("csv.bad_header", CodeClass::File);
/// `csv.bad_row`: a row cannot be read; it is skipped.
pub const CSV_BAD_ROW: Code = Code::new("csv.bad_row", CodeClass::File);
/// `csv.empty`: no data rows.
pub const CSV_EMPTY: Code = Code::new("csv.empty", CodeClass::File);
/// `csv.no_mapping`: a CSV source without a mapping (refused by the configuration check).
pub const CSV_NO_MAPPING: Code = Code::new("csv.no_mapping", CodeClass::Config);
/// `file.too_large`: larger than `max_file_bytes`; not read.
pub const FILE_TOO_LARGE: Code = Code::new("file.too_large", CodeClass::File);
/// Every code of the file drop.
pub const CODES: &[Code] = &[
    CSV_BAD_HEADER,
    CSV_BAD_ROW,
    CSV_EMPTY,
    CSV_NO_MAPPING,
    FILE_TOO_LARGE,
];

/// `[sources.<name>]` with `type = "file_drop"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropConfig {
    /// Directory to watch; `done/` and `failed/` are created inside it.
    pub dir: PathBuf,
    /// File formats to pick up: `"csv"` (`*.csv`) and/or `"x12"` (`*.edi`, `*.x12`).
    #[serde(default = "default_formats")]
    pub formats: Vec<String>,
    /// jq program from one CSV row (`{"<header>": "<value>", …, "_file": …, "_line": n}`)
    /// to event drafts; required when `formats` has `"csv"`.
    #[serde(default)]
    pub mapping: Option<String>,
    /// How often the directory is scanned (default 2 s).
    #[serde(default = "default_poll", deserialize_with = "duration::de")]
    pub poll: Duration,
    /// Field delimiter (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Largest file read, in bytes (default 64 MiB); larger files go to `failed/`.
    #[serde(default = "default_max_file")]
    pub max_file_bytes: u64,
    /// For X12 files: the fixed UTC offset (`"-06:00"`) of the times sent without a zone,
    /// as on an `x12` source.
    #[serde(default)]
    pub local_time_offset: Option<String>,
}

fn default_formats() -> Vec<String> {
    vec!["csv".into()]
}

fn default_poll() -> Duration {
    Duration::from_secs(2)
}
fn default_delimiter() -> char {
    ','
}
fn default_max_file() -> u64 {
    64 * 1024 * 1024
}

/// A validated file-drop source.
pub struct FileDrop {
    name: String,
    dir: PathBuf,
    mapping: Option<Program>,
    csv: bool,
    x12: bool,
    poll: Duration,
    delimiter: u8,
    max_file_bytes: u64,
    local_offset: Option<time::UtcOffset>,
}

/// A problem with one line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: u64,
    /// The raw line.
    pub raw: String,
    /// Stable code.
    pub code: Code,
    /// What is wrong.
    pub reason: String,
}

/// What reading one file produced.
#[derive(Debug, Clone)]
pub struct FileBatch {
    /// Drafts of the good rows.
    pub drafts: Vec<EventDraft>,
    /// The bad rows.
    pub errors: Vec<LineError>,
}

impl FileDrop {
    /// Validates the configuration (no I/O).
    pub fn build(name: &str, cfg: &FileDropConfig) -> Result<FileDrop, Vec<ConfigError>> {
        let mut errs = Vec::new();
        for f in &cfg.formats {
            if f != "csv" && f != "x12" {
                errs.push(ConfigError::new(
                    "formats",
                    format!("unknown format `{f}` (use \"csv\" or \"x12\")"),
                ));
            }
        }
        let csv = cfg.formats.iter().any(|f| f == "csv");
        let x12 = cfg.formats.iter().any(|f| f == "x12");
        let mapping = match &cfg.mapping {
            Some(m) => Program::compile(m)
                .map_err(|e| errs.push(ConfigError::new("mapping", e)))
                .ok(),
            None => None,
        };
        if csv && cfg.mapping.is_none() {
            errs.push(ConfigError::new("mapping", "required to read CSV files"));
        }
        if !cfg.delimiter.is_ascii() {
            errs.push(ConfigError::new("delimiter", "must be one ASCII character"));
        }
        let local_offset = crate::inbound::local_time_offset(cfg.local_time_offset.as_deref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        match mapping {
            _ if !errs.is_empty() => Err(errs),
            mapping => Ok(FileDrop {
                name: name.to_owned(),
                dir: cfg.dir.clone(),
                mapping,
                csv,
                x12,
                poll: cfg.poll,
                delimiter: cfg.delimiter as u8,
                max_file_bytes: cfg.max_file_bytes,
                local_offset,
            }),
        }
    }

    /// Parses and maps one file's content. Pure: never fails as a whole; every problem is
    /// a line error naming the line.
    pub fn read(&self, file_name: &str, content: &[u8], file_key: &str) -> FileBatch {
        let mut batch = FileBatch {
            drafts: Vec::new(),
            errors: Vec::new(),
        };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(false)
            .from_reader(content);
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                batch.errors.push(LineError {
                    line: 1,
                    raw: first_line(content, 1),
                    code: CSV_BAD_HEADER,
                    reason: e.to_string(),
                });
                return batch;
            }
        };
        let mut record = csv::StringRecord::new();
        loop {
            let line = rdr.position().line();
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(line, |p| p.line());
                    match self.map_row(file_name, &headers, &record, line, file_key) {
                        Ok(d) => batch.drafts.extend(d),
                        Err((code, reason)) => batch.errors.push(LineError {
                            line,
                            raw: first_line(content, line),
                            code,
                            reason,
                        }),
                    }
                }
                Err(e) => {
                    let at = e.position().map_or(line, |p| p.line());
                    batch.errors.push(LineError {
                        line: at,
                        raw: first_line(content, at),
                        code: CSV_BAD_ROW,
                        reason: e.to_string(),
                    });
                    // The reader resynchronises at the next line.
                }
            }
        }
        batch
    }

    fn map_row(
        &self,
        file: &str,
        headers: &csv::StringRecord,
        record: &csv::StringRecord,
        line: u64,
        file_key: &str,
    ) -> Result<Vec<EventDraft>, (Code, String)> {
        let mut obj = serde_json::Map::new();
        for (h, v) in headers.iter().zip(record.iter()) {
            obj.insert(
                h.trim().to_owned(),
                serde_json::Value::String(v.trim().to_owned()),
            );
        }
        obj.insert("_file".into(), file.into());
        obj.insert("_line".into(), line.into());
        let bytes = serde_json::to_vec(&obj).map_err(|e| (CSV_BAD_ROW, e.to_string()))?;
        let payload = Payload::parse(&bytes).map_err(|e| (e.failure(), e.to_string()))?;
        let mapping = self
            .mapping
            .as_ref()
            .ok_or_else(|| (CSV_NO_MAPPING, "this source has no CSV mapping".to_string()))?;
        let drafts = mapping
            .run(&payload, &[], &self.name)
            .map_err(|e| (e.failure(), e.to_string()))?;
        let n = drafts.len();
        let mut out = Vec::with_capacity(n);
        for (i, mut d) in drafts.into_iter().enumerate() {
            // A timed status is its fact (the same row in another file is the same event);
            // anything else is this row of this file.
            if d.key.is_none() && !d.identified_by_fact() {
                d.key = Some(if n == 1 {
                    format!("{file_key}:{line}")
                } else {
                    format!("{file_key}:{line}:{i}")
                });
            }
            // Validate now so that a bad row is reported on its line, not as a failed file.
            d.clone()
                .into_event(
                    0,
                    &waybill_model::draft::Origin {
                        source: &self.name,
                        payload_key: file_key,
                        received_at: OffsetDateTime::UNIX_EPOCH,
                        traceparent: None,
                    },
                )
                .map_err(|e| (waybill_mapping::BAD_OUTPUT, e.to_string()))?;
            out.push(d);
        }
        Ok(out)
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Scans the directory every `poll` until `shutdown`, processing each file once.
    pub async fn watch(self: Arc<Self>, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
        for sub in ["done", "failed"] {
            if let Err(e) = tokio::fs::create_dir_all(self.dir.join(sub)).await {
                tracing::error!(source = %self.name, dir = %self.dir.display(), error = %e, "cannot create file-drop directories");
            }
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.pending_files().await {
                Ok(files) => {
                    for f in files {
                        if *shutdown.borrow() {
                            return;
                        }
                        if let Err(e) = self.process(&hub, &f).await {
                            tracing::warn!(source = %self.name, file = %f.display(), error = %e, "file not processed; will retry");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(source = %self.name, dir = %self.dir.display(), error = %e, "cannot list drop directory")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn pending_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut rd = tokio::fs::read_dir(&self.dir).await?;
        while let Some(e) = rd.next_entry().await? {
            let p = e.path();
            if self.format_of(&p).is_some() && e.file_type().await?.is_file() {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    fn format_of(&self, p: &Path) -> Option<&'static str> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" if self.csv => Some("csv"),
            "edi" | "x12" if self.x12 => Some("x12"),
            _ => None,
        }
    }

    /// Imports one interchange file; writes its 997 beside it (`<file>.997`), or a TA1
    /// alone (`<file>.ta1`) when its envelope failed and it asked for a TA1.
    async fn process_x12(
        &self,
        hub: &Hub,
        path: &Path,
        name: &str,
        content: Vec<u8>,
    ) -> DropResult<()> {
        let received = Received {
            source: self.name.clone(),
            headers: vec![("x-file-name".to_string(), name.to_owned())],
            body: content,
            too_large: false,
            url_token: None,
            received_at: OffsetDateTime::now_utc(),
        };
        // Keys come from the documents only: not the file name, not the source.
        let mapped =
            crate::inbound::x12_mapped(&received.body, received.received_at, self.local_offset);
        let ack = crate::inbound::x12_ack(
            &received.body,
            mapped.as_ref().map(|_| ()),
            received.received_at,
        );
        let (good, report) = match mapped {
            Ok(m) => match hub.ingest_mapped(received, m).await? {
                IngestReply::Rejected { code, detail, .. } => {
                    (false, vec![format!("{name}: {code}: {detail}")])
                }
                _ => (true, Vec::new()),
            },
            Err(rej) => {
                let line = format!("{name}: {}: {}", rej.code, rej.detail);
                hub.ingest_rejected(received, rej).await?;
                (false, vec![line])
            }
        };
        let dest = self.finish(path, name, good, &report).await?;
        if let Some(ack) = ack {
            tokio::fs::write(
                dest.with_file_name(format!("{}.{}", file_name_of(&dest), ack.kind)),
                ack.doc,
            )
            .await?;
        }
        Ok(())
    }

    /// Imports one file, then moves it. Returns an error (and leaves the file in place for
    /// the next scan) only when the store could not take it.
    pub async fn process(&self, hub: &Hub, path: &Path) -> DropResult<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = tokio::fs::metadata(path).await?;
        let received_at = OffsetDateTime::now_utc();
        let headers = vec![("x-file-name".to_string(), name.clone())];
        let received = |body: Vec<u8>| Received {
            source: self.name.clone(),
            headers: headers.clone(),
            body,
            too_large: false,
            url_token: None,
            received_at,
        };
        if meta.len() > self.max_file_bytes {
            let rej = Rejection::new(
                FILE_TOO_LARGE,
                format!(
                    "{name}: {} bytes exceeds {}",
                    meta.len(),
                    self.max_file_bytes
                ),
            );
            hub.ingest_rejected(received(Vec::new()), rej.clone())
                .await?;
            self.finish(
                path,
                &name,
                false,
                &[format!("{}: {}", rej.code, rej.detail)],
            )
            .await?;
            return Ok(());
        }
        let content = tokio::fs::read(path).await?;
        if self.format_of(path) == Some("x12") {
            return self.process_x12(hub, path, &name, content).await;
        }
        let file_key = format!("file:{}", waybill_model::ids::content_hash(&content));
        let batch = self.read(&name, &content, &file_key);
        let mut report = Vec::new();
        for e in &batch.errors {
            report.push(format!("{name}:{}: {}: {}", e.line, e.code, e.reason));
            let rej = Rejection::new(e.code, format!("{name}:{}: {}", e.line, e.reason));
            hub.ingest_rejected(received(e.raw.clone().into_bytes()), rej)
                .await?;
        }
        let good = !batch.drafts.is_empty();
        if good {
            let reply = hub
                .ingest_mapped(
                    received(content.clone()),
                    Mapped {
                        payload_key: file_key,
                        drafts: batch.drafts,
                    },
                )
                .await?;
            if let IngestReply::Rejected { code, detail, .. } = reply {
                report.push(format!("{name}: {code}: {detail}"));
                self.finish(path, &name, false, &report).await?;
                return Ok(());
            }
        } else if batch.errors.is_empty() {
            report.push(format!("{name}: {CSV_EMPTY}: no data rows"));
            hub.ingest_rejected(
                received(content),
                Rejection::new(CSV_EMPTY, format!("{name}: no data rows")),
            )
            .await?;
        }
        self.finish(path, &name, good, &report).await?;
        Ok(())
    }

    async fn finish(
        &self,
        path: &Path,
        name: &str,
        good: bool,
        report: &[String],
    ) -> DropResult<PathBuf> {
        let dest_dir = self.dir.join(if good { "done" } else { "failed" });
        tokio::fs::create_dir_all(&dest_dir).await?;
        // A file of the same name processed earlier is kept: the new one gets a suffix.
        let mut dest_name = name.to_owned();
        if tokio::fs::try_exists(dest_dir.join(&dest_name))
            .await
            .unwrap_or(false)
        {
            dest_name = format!(
                "{name}.{}",
                OffsetDateTime::now_utc().unix_timestamp_nanos()
            );
        }
        if !report.is_empty() {
            let mut text = report.join("\n");
            text.push('\n');
            tokio::fs::write(dest_dir.join(format!("{dest_name}.errors.txt")), text).await?;
        }
        let dest = dest_dir.join(&dest_name);
        tokio::fs::rename(path, &dest).await?;
        tracing::info!(source = %self.name, file = name, good, errors = report.len(), "file processed");
        Ok(dest)
    }
}

fn file_name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn first_line(content: &[u8], line: u64) -> String {
    String::from_utf8_lossy(content)
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .to_owned()
}

/// Why a file could not be processed (it stays in place for the next scan).
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// File system.
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    /// Store.
    #[error("store: {0}")]
    Store(#[from] waybill_store::StoreError),
}

type DropResult<T> = Result<T, DropError>;

#[cfg(test)]
mod tests;
