//! Property tests: the parser never panics; generated 214s round-trip; every 997 built
//! (for an accepted or a rejected interchange) is itself a valid interchange.

use super::tests::STATUS_214;
use super::*;
use proptest::prelude::*;
use serde_json::Value;
use time::macros::datetime;

const RECEIVED: time::OffsetDateTime = datetime!(2026-03-12 15:00:00 UTC);

const FIXTURES: [&[u8]; 4] = [
    STATUS_214,
    include_bytes!("testdata/856_ship_notice.edi"),
    include_bytes!("testdata/210_freight_invoice.edi"),
    include_bytes!("testdata/214_custom_separators.edi"),
];

/// Runs everything a connector would on `input`, as it is and asking for a TA1 (ISA14 =
/// `1`); panics only if a built 997 or TA1 does not parse back as one.
fn exercise(input: &[u8]) {
    exercise_once(input);
    let mut asking = input.to_vec();
    if asking.starts_with(b"ISA") {
        if let Some(b) = asking.get_mut(100) {
            *b = b'1';
        }
        exercise_once(&asking);
    }
}

fn exercise_once(input: &[u8]) {
    match parse(input) {
        Ok(ic) => {
            let _ = map(&ic, RECEIVED, None);
            let ack = ack_997(&ic, &AckResult::check(&ic), 42, RECEIVED);
            assert_is_997(&ack, ic.groups.len());
        }
        Err(e) => {
            if let Some(ack) = reject_997(input, &e, 42, RECEIVED) {
                assert_is_997(&ack, usize::MAX);
            }
            if let Some(ta1) = reject_ta1(input, &e, 42, RECEIVED) {
                let back = parse(ta1.as_bytes())
                    .unwrap_or_else(|e| panic!("TA1 does not parse: {e}\n{ta1}"));
                assert_eq!(
                    (back.interchange_acks.len(), back.groups.len()),
                    (1, 0),
                    "{ta1}"
                );
            }
        }
    }
}

fn assert_is_997(text: &str, groups: usize) {
    let back = match parse(text.as_bytes()) {
        Ok(ic) => ic,
        Err(e) => panic!("997 does not parse: {e}\n{text}"),
    };
    let sets: Vec<&str> = back
        .groups
        .iter()
        .flat_map(|g| g.sets.iter().map(|s| s.id.as_str()))
        .collect();
    assert!(sets.iter().all(|id| *id == "997"), "{text}");
    if groups != usize::MAX {
        assert_eq!(sets.len(), groups, "one 997 set per received group\n{text}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if let Some(x) = bytes.get_mut(i % len) {
                    *x = *b;
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::Insert(i, b) => {
                let at = (i % len).min(bytes.len());
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let at = (i % len).min(bytes.len());
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// One generated AT7: status, reason, date parts, time code.
type Gen = (String, String, (i32, u8, u8, u8, u8), String);

fn status() -> impl Strategy<Value = Gen> {
    let codes = prop::sample::select(vec![
        "AF", "X4", "X6", "D1", "SD", "AH", "A7", "A3", "CA", "XB", "AM", "ZZ", "Q9",
    ]);
    let reasons = prop::sample::select(vec!["NS", "AO", "AQ", "A2", "ZZ", ""]);
    let zones = prop::sample::select(vec!["ET", "CT", "PD", "UT", "LT", "", "05", "14"]);
    (
        codes,
        reasons,
        (2000i32..2040, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60),
        zones,
    )
        .prop_map(|(c, r, d, z)| (c.to_owned(), r.to_owned(), d, z.to_owned()))
}

/// Distinct element, component and segment delimiters, plus a line break.
fn delimiters() -> impl Strategy<Value = (char, char, char, &'static str)> {
    let pool = vec!['*', '|', '+', '!', '^', '\u{1d}', '#', '~', '\''];
    (
        prop::sample::subsequence(pool, 3).prop_shuffle(),
        prop::sample::select(vec!["", "\n", "\r\n"]),
    )
        .prop_map(|(d, nl)| (d[0], d[1], d[2], nl))
}

fn build_214(
    scac: &str,
    id: &str,
    statuses: &[Gen],
    (e, c, t, nl): (char, char, char, &str),
) -> String {
    let mut segs = vec![format!(
        "ISA{e}00{e}          {e}00{e}          {e}02{e}{scac:<15}{e}ZZ{e}{:<15}{e}260311{e}1400{e}U{e}00401{e}000000042{e}0{e}P{e}{c}",
        "WAYBILLHUB"
    )];
    segs.push(format!(
        "GS{e}QM{e}{scac}{e}WAYBILLHUB{e}20260311{e}1400{e}42{e}X{e}004010"
    ));
    let body_start = segs.len();
    segs.push(format!("ST{e}214{e}0001"));
    segs.push(format!("B10{e}PRO1{e}{id}{e}{scac}"));
    for (n, (code, reason, (y, mo, d, h, mi), zone)) in statuses.iter().enumerate() {
        segs.push(format!("LX{e}{}", n + 1));
        segs.push(format!(
            "AT7{e}{code}{e}{reason}{e}{e}{e}{y:04}{mo:02}{d:02}{e}{h:02}{mi:02}{e}{zone}"
        ));
    }
    let n = segs.len() - body_start + 1;
    segs.push(format!("SE{e}{n}{e}0001"));
    segs.push(format!("GE{e}1{e}42"));
    segs.push(format!("IEA{e}1{e}000000042"));
    segs.iter()
        .map(|s| format!("{}{t}{nl}", s.trim_end_matches(e)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    #[test]
    fn parse_never_panics_on_an_isa_followed_by_junk(tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = STATUS_214.get(..107).unwrap_or(STATUS_214).to_vec();
        bytes.extend(tail);
        exercise(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_fixtures(
        pick in 0usize..FIXTURES.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let base = FIXTURES.get(pick).copied().unwrap_or(STATUS_214);
        exercise(&mutate(base.to_vec(), &mutations));
    }

    #[test]
    fn a_generated_214_maps_to_its_statuses(
        scac in "[A-Z]{2,4}",
        id in "[A-Z0-9][A-Z0-9-]{0,19}",
        statuses in prop::collection::vec(status(), 1..12),
        delims in delimiters(),
    ) {
        let text = build_214(&scac, &id, &statuses, delims);
        let ic = parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text:?}")))?;
        let drafts = map(&ic, RECEIVED, None).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(drafts.len(), statuses.len());
        for (d, (code, reason, _, zone)) in drafts.iter().zip(&statuses) {
            let (ty, known) = vocabulary::event_type(code);
            prop_assert_eq!(&d.ty, ty.as_str());
            prop_assert_eq!(d.code.as_deref(), Some(code.as_str()));
            let r = (!reason.is_empty()).then_some(reason.as_str());
            prop_assert_eq!(d.reason.as_deref(), vocabulary::reason(code, known, r));
            prop_assert_eq!(&d.subject, &shipment_key(&scac, &id));
            let t = d.time.as_deref().unwrap_or("");
            let offset = match zone.as_str() {
                "UT" | "LT" | "" => Some("Z"),
                "05" => Some("+05:00"),
                "14" => Some("-11:00"),
                "PD" => Some("-07:00"),
                _ => None,
            };
            if let Some(o) = offset {
                prop_assert!(t.ends_with(o), "{} does not end with {}", t, o);
            }
            let local = d.data.as_ref().and_then(|v| v.get("time_zone")).is_some();
            prop_assert_eq!(local, zone == "LT" || zone.is_empty());
            if local {
                // Never a wall clock written as UTC: the receipt time, the wall clock kept.
                prop_assert_eq!(t, "2026-03-12T15:00:00Z");
                let wall = d.data.as_ref().and_then(|v| v.get("local_time")).and_then(Value::as_str);
                prop_assert!(wall.is_some_and(|w| !w.ends_with('Z')), "{:?}", wall);
            }
        }
        let ack = ack_997(&ic, &AckResult::check(&ic), 7, RECEIVED);
        assert_is_997(&ack, 1);
        prop_assert!(ack.contains("AK5") && ack.contains(&format!("AK9{}A", delims.0)), "{}", ack);
    }
}
