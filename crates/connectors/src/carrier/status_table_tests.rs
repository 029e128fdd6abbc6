//! STATUS_TABLE.md and the mapping code agree: every row is run through the partner's
//! `classify`, and every value the code knows must appear in the table.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use waybill_model::EventType;

/// One parsed row: the cells, backticks removed.
type Row = Vec<String>;

/// The rows of every table under `## <section>`, header and separator rows skipped.
fn rows(section: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/carrier-status-table.md"
    ))
    .unwrap();
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim() == section;
            continue;
        }
        if !inside || !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let cells: Row = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().replace('`', ""))
            .collect();
        if ["status", "tag", "incident reason"].contains(&cells[0].as_str()) {
            continue;
        }
        out.push(cells);
    }
    assert!(!out.is_empty(), "no rows under ## {section}");
    out
}

fn event(cell: &str) -> Option<EventType> {
    (cell != "—").then(|| cell.parse().unwrap())
}

fn reason(cell: &str) -> Option<&str> {
    (cell != "—").then_some(cell)
}

/// Expands a sub-status cell into concrete values: `*` → none and every known value,
/// `(none)` → none, `(unrecognized)` → a made-up future value, else the value itself.
fn expand(cell: &str, known: &[&str], future: &str) -> Vec<Option<String>> {
    match cell {
        "*" => std::iter::once(None)
            .chain(known.iter().map(|k| Some((*k).to_owned())))
            .collect(),
        "(none)" => vec![None],
        "(unrecognized)" => vec![Some(future.to_owned())],
        v => vec![Some(v.to_owned())],
    }
}

fn top(cell: &str, future: &str) -> String {
    if cell == "(unrecognized)" {
        future.to_owned()
    } else {
        cell.to_owned()
    }
}

#[test]
fn easypost_table_matches_the_code() {
    use crate::easypost::{classify, Status, StatusDetail};
    let mut statuses = BTreeSet::new();
    let mut details = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for r in rows("EasyPost") {
        statuses.insert(r[0].clone());
        details.insert(r[1].clone());
        pairs.insert((r[0].clone(), r[1].clone()));
        let status = Status::from(top(&r[0], "zz_future_status"));
        for d in expand(&r[1], StatusDetail::KNOWN, "zz_future_detail") {
            let got = classify(&status, d.map(StatusDetail::from).as_ref());
            assert_eq!(
                (got.ty, got.reason),
                (event(&r[2]), reason(&r[3])),
                "row {r:?}"
            );
        }
    }
    for s in Status::KNOWN {
        assert!(
            statuses.contains(*s),
            "status {s} missing from STATUS_TABLE.md"
        );
    }
    for d in StatusDetail::KNOWN {
        assert!(
            details.contains(*d),
            "status_detail {d} missing from STATUS_TABLE.md"
        );
        // The two statuses whose mapping depends on the detail list every detail.
        for s in ["failure", "return_to_sender"] {
            assert!(
                pairs.contains(&(s.to_owned(), (*d).to_owned())),
                "{s} + {d} missing"
            );
        }
    }
}

#[test]
fn aftership_table_matches_the_code() {
    use crate::aftership::{classify, Subtag, Tag};
    let mut tags = BTreeSet::new();
    let mut subtags = BTreeSet::new();
    for r in rows("AfterShip") {
        tags.insert(r[0].clone());
        subtags.insert(r[1].clone());
        let tag = Tag::from(top(&r[0], "ZzFutureTag"));
        for s in expand(&r[1], Subtag::KNOWN, "Zz_999") {
            let got = classify(&tag, s.map(Subtag::from).as_ref());
            assert_eq!(
                (got.ty, got.reason),
                (event(&r[2]), reason(&r[3])),
                "row {r:?}"
            );
        }
    }
    for t in Tag::KNOWN {
        assert!(tags.contains(*t), "tag {t} missing from STATUS_TABLE.md");
    }
    for s in Subtag::KNOWN {
        assert!(
            subtags.contains(*s),
            "subtag {s} missing from STATUS_TABLE.md"
        );
    }
    for required in [
        "Exception_016",
        "Exception_017",
        "Exception_018",
        "Delivered_005",
    ] {
        assert!(subtags.contains(required), "{required}");
    }
}

#[test]
fn karrio_table_matches_the_code() {
    use crate::karrio::{classify, Reason, Status};
    let all = rows("Karrio");
    let (status_rows, reason_rows): (Vec<Row>, Vec<Row>) =
        all.into_iter().partition(|r| r.len() >= 4);
    let mut statuses = BTreeSet::new();
    for r in status_rows {
        statuses.insert(r[0].clone());
        let status = match r[0].as_str() {
            "(none)" => None,
            other => Some(Status::from(top(other, "zz_future_status"))),
        };
        for given in expand(&r[1], Reason::KNOWN, "zz_future_reason") {
            let got = classify(status.as_ref(), given.clone().map(Reason::from).as_ref());
            let want_reason = match r[3].as_str() {
                "= reason" => given.as_deref(),
                other => reason(other),
            };
            // `*` includes "no reason", which the `(none)` row states; skip it here.
            if r[1] == "*" && given.is_none() {
                continue;
            }
            assert_eq!(
                (got.ty, got.reason),
                (event(&r[2]), want_reason),
                "row {r:?} {given:?}"
            );
        }
    }
    for s in Status::KNOWN {
        assert!(
            statuses.contains(*s),
            "status {s} missing from STATUS_TABLE.md"
        );
    }
    let listed: BTreeSet<String> = reason_rows.into_iter().map(|r| r[0].clone()).collect();
    let known: BTreeSet<String> = Reason::KNOWN.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        listed, known,
        "TrackingIncidentReason list differs from the code"
    );
}

#[test]
fn every_carrier_format_has_its_table() {
    for format in super::CARRIERS {
        // `rows` fails when the section is missing or empty.
        let rows = rows(format.display_name());
        assert!(
            rows.len() > 3,
            "{}: {} rows",
            format.display_name(),
            rows.len()
        );
    }
}
