//! Test helpers shared by the partner suites: the fixture runner (sample → expected
//! canonical output), draft validation through the model, and fixture mutation.
//!
//! Expected files are `<sample>.expected.json` beside each sample. To regenerate them after
//! a deliberate mapping change, run `WAYBILL_BLESS=1 cargo test` and review the diff.

#![allow(clippy::unwrap_used)]

use crate::carrier::map_error::MapError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use waybill_engine::partner::Mapped;
use waybill_model::draft::Origin;

/// A partner's `map` function.
pub type MapFn = fn(&[u8], OffsetDateTime) -> Result<Mapped, MapError>;

/// The receive time used by every fixture (after every sample's scans).
pub fn received_at() -> OffsetDateTime {
    time::macros::datetime!(2026-03-05 00:00:00 UTC)
}

/// The partner's `testdata/` folder.
pub fn testdata(partner: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(partner)
        .join("testdata")
}

/// Every sample (`*.json` that is not `*.expected.json`), sorted.
pub fn samples(partner: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata(partner))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".json") && !n.ends_with(".expected.json")
        })
        .collect();
    v.sort();
    v
}

/// The outcome of mapping, as it is stored in an expected file.
pub fn outcome(result: &Result<Mapped, MapError>) -> Value {
    match result {
        Ok(m) => serde_json::to_value(m).unwrap(),
        Err(e) => json!({"error": {"code": e.code(), "path": e.path(), "message": e.to_string()}}),
    }
}

/// Maps every sample and compares with its expected file; also checks that every draft
/// becomes a valid canonical event.
pub fn check_fixtures(partner: &str, map: MapFn) {
    let bless = std::env::var_os("WAYBILL_BLESS").is_some();
    let all = samples(partner);
    assert!(all.len() >= 8, "{partner}: too few samples");
    for sample in all {
        let body = std::fs::read(&sample).unwrap();
        let result = map(&body, received_at());
        if let Ok(m) = &result {
            assert_valid_events(m);
        }
        let got = outcome(&result);
        let expected_path = sample.with_extension("expected.json");
        if bless {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected: Value = serde_json::from_slice(
            &std::fs::read(&expected_path)
                .unwrap_or_else(|_| panic!("missing {}", expected_path.display())),
        )
        .unwrap();
        assert_eq!(
            got,
            expected,
            "{} differs from its expected output",
            sample.display()
        );
    }
}

/// Every draft passes the model's own validation (type in the taxonomy, subject a valid
/// shipment key, RFC 3339 time, object data).
pub fn assert_valid_events(m: &Mapped) {
    let origin = Origin {
        source: "test",
        payload_key: &m.payload_key,
        received_at: received_at(),
        traceparent: None,
    };
    let mut ids = std::collections::HashSet::new();
    for (i, d) in m.drafts.iter().enumerate() {
        let ev = d.clone().into_event(i, &origin).unwrap();
        assert!(
            ids.insert(ev.id.clone()),
            "duplicate event id for draft {i}"
        );
    }
}

/// A deterministic family of mutations of a fixture: truncations, byte flips, and values
/// replaced by other JSON types.
pub fn mutations(body: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let n = body.len().max(1);
    let pos = (seed as usize) % n;
    out.push(body[..pos.min(body.len())].to_vec());
    let mut flipped = body.to_vec();
    if !flipped.is_empty() {
        flipped[pos] ^= 1 << (seed % 8);
    }
    out.push(flipped);
    let text = String::from_utf8_lossy(body);
    for replacement in ["null", "7", "[]", "{}", "\"\"", "\"x\""] {
        // Replace the seed-th string value with another type.
        let quotes: Vec<usize> = text.match_indices(": \"").map(|(i, _)| i + 2).collect();
        if quotes.is_empty() {
            break;
        }
        let start = quotes[(seed as usize) % quotes.len()];
        if let Some(len) = text[start + 1..].find('"') {
            let mut s = text.to_string();
            s.replace_range(start..start + len + 2, replacement);
            out.push(s.into_bytes());
        }
    }
    out
}
