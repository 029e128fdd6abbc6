//! Fixture tests (testdata/*.edi against testdata/*.expected.json) and unit tests.
//! `WAYBILL_BLESS=1 cargo test` (or `X12_UPDATE_EXPECTED=1`) rewrites the expected files
//! (review the diff!).

use super::*;
use serde_json::{json, Value};
use time::macros::datetime;
use waybill_model::draft::Origin;

const RECEIVED: time::OffsetDateTime = datetime!(2026-03-12 15:00:00 UTC);
const NOW: time::OffsetDateTime = datetime!(2026-03-12 15:00:05 UTC);

fn error_json(e: &X12Error) -> Value {
    json!({
        "code": e.code(),
        "segment_index": e.at.segment_index,
        "segment_id": e.at.segment_id,
        "byte_offset": e.at.byte_offset,
        "element": e.at.element,
        "message": e.message,
    })
}

/// The canonical output of a fixture: drafts and 997 when it maps, else the error and
/// the rejecting 997.
fn canonical(input: &[u8]) -> Value {
    let mapped = parse(input).and_then(|ic| map(&ic, RECEIVED, None).map(|d| (ic, d)));
    match mapped {
        Ok((ic, drafts)) => {
            let origin = Origin {
                source: "x12",
                payload_key: &ic.payload_key(),
                received_at: RECEIVED,
                traceparent: None,
            };
            for (i, d) in drafts.iter().enumerate() {
                d.clone()
                    .into_event(i, &origin)
                    .expect("every draft is a valid event");
            }
            json!({
                "payload_key": ic.payload_key(),
                "drafts": drafts,
                "ack_997": ack_997(&ic, &AckResult::check(&ic), 1, NOW),
            })
        }
        Err(e) => json!({
            "error": error_json(&e),
            "reject_997": reject_997(input, &e, 1, NOW),
        }),
    }
}

fn check_fixture(name: &str, input: &[u8], expected: &str) {
    let got = canonical(input);
    if std::env::var_os("WAYBILL_BLESS").is_some()
        || std::env::var_os("X12_UPDATE_EXPECTED").is_some()
    {
        let path = format!(
            "{}/src/x12/testdata/{name}.expected.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(path, text).expect("write expected");
        return;
    }
    let want: Value = serde_json::from_str(expected).expect("expected file is JSON");
    assert!(
        got == want,
        "{name}: output differs from {name}.expected.json\n--- got:\n{}",
        serde_json::to_string_pretty(&got).unwrap_or_default()
    );
}

macro_rules! fixture {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            check_fixture(
                $name,
                include_bytes!(concat!("testdata/", $name, ".edi")),
                include_str!(concat!("testdata/", $name, ".expected.json")),
            );
        }
    };
}

fixture!(fixture_214_shipment_status, "214_shipment_status");
fixture!(fixture_856_ship_notice, "856_ship_notice");
fixture!(fixture_856_partial_shipment, "856_partial_shipment");
fixture!(fixture_210_freight_invoice, "210_freight_invoice");
fixture!(fixture_214_custom_separators, "214_custom_separators");
fixture!(fixture_bad_segment_count, "bad_segment_count");
fixture!(fixture_control_number_mismatch, "control_number_mismatch");
fixture!(fixture_truncated_isa, "truncated_isa");
fixture!(fixture_214_bad_date, "214_bad_date");

pub(crate) const STATUS_214: &[u8] = include_bytes!("testdata/214_shipment_status.edi");
const SMALL_214: &str = include_str!("testdata/bad_segment_count.edi");

fn small_214() -> String {
    SMALL_214.replace("SE*7*0001", "SE*5*0001")
}

fn parse_err(input: &str) -> X12Error {
    parse(input.as_bytes()).expect_err("must not parse")
}

#[test]
fn malformed_fixtures_name_the_failing_segment() {
    let e = parse(include_bytes!("testdata/bad_segment_count.edi")).expect_err("bad count");
    assert_eq!(
        (
            e.code(),
            e.at.segment_index,
            e.at.segment_id.as_str(),
            e.at.element
        ),
        ("x12.segment_count_mismatch", 7, "SE", Some(1))
    );
    let e = parse(include_bytes!("testdata/control_number_mismatch.edi")).expect_err("bad GE02");
    assert_eq!(
        (
            e.code(),
            e.at.segment_index,
            e.at.segment_id.as_str(),
            e.at.element
        ),
        ("x12.control_number_mismatch", 8, "GE", Some(2))
    );
    let e = parse(include_bytes!("testdata/truncated_isa.edi")).expect_err("short ISA");
    assert_eq!(
        (e.code(), e.at.segment_index, e.at.byte_offset),
        ("x12.bad_isa", 1, 0)
    );
    let ic = parse(include_bytes!("testdata/214_bad_date.edi")).expect("envelope is fine");
    let e = map(&ic, RECEIVED, None).expect_err("Feb 31st");
    assert_eq!(
        (
            e.code(),
            e.at.segment_index,
            e.at.segment_id.as_str(),
            e.at.element
        ),
        ("x12.bad_element", 6, "AT7", Some(5))
    );
}

#[test]
fn crlf_after_terminators_is_tolerated_and_echoed() {
    let crlf = small_214().replace("~\n", "~\r\n");
    let ic = parse(crlf.as_bytes()).expect("CRLF is fine");
    assert_eq!(ic.delimiters.line_break, "\r\n");
    assert!(ack_997(&ic, &AckResult::accept_all(), 7, NOW).contains("~\r\nGS*FA*"));
    let none = small_214().replace("~\n", "~");
    assert_eq!(
        parse(none.as_bytes())
            .expect("no breaks")
            .delimiters
            .line_break,
        ""
    );
}

#[test]
fn trailer_mismatches_are_reported_at_the_trailer() {
    let e = parse_err(&small_214().replace("SE*5*0001", "SE*5*0002"));
    assert_eq!(
        (e.code(), e.at.segment_index, e.at.element),
        ("x12.control_number_mismatch", 7, Some(2))
    );
    let e = parse_err(&small_214().replace("IEA*1*000000906", "IEA*1*000000907"));
    assert_eq!(
        (e.code(), e.at.segment_id.as_str()),
        ("x12.control_number_mismatch", "IEA")
    );
    let e = parse_err(&small_214().replace("IEA*1*", "IEA*2*"));
    assert_eq!(
        (e.code(), e.at.segment_index),
        ("x12.group_count_mismatch", 9)
    );
    let e = parse_err(&small_214().replace("GE*1*", "GE*3*"));
    assert_eq!(
        (e.code(), e.at.segment_index),
        ("x12.set_count_mismatch", 8)
    );
    let e = parse_err(&small_214().replace("SE*5*", "SE*x*"));
    assert_eq!(
        e.kind,
        ErrorKind::BadElement(ElementProblem::InvalidCharacter)
    );
}

#[test]
fn structure_errors_are_precise() {
    let s = small_214();
    let cut = s.find("GE*").expect("GE");
    let e = parse_err(s.get(..cut).expect("prefix"));
    assert_eq!(
        (e.code(), e.kind.clone(), e.at.segment_index),
        ("x12.missing_segment", ErrorKind::MissingSegment("GE"), 8)
    );
    let e = parse_err(&s.replace("SE*5*0001~\n", ""));
    assert_eq!(
        (e.kind.clone(), e.at.segment_id.as_str()),
        (ErrorKind::MissingSegment("SE"), "GE")
    );
    let e = parse_err(&s.replace("LX*1~", "lx*1~"));
    assert_eq!(
        (e.code(), e.at.segment_index),
        ("x12.unexpected_segment", 5)
    );
    let e = parse_err(&s.replace("GS*QM", "XX*QM"));
    assert_eq!(
        (e.code(), e.at.segment_index),
        ("x12.unexpected_segment", 2)
    );
    let e = parse_err(s.trim_end().trim_end_matches('~'));
    assert_eq!(
        (e.code(), e.at.segment_id.as_str()),
        ("x12.truncated", "IEA")
    );
    let e = parse_err(&s.replacen("*", "+", 1));
    assert_eq!((e.code(), e.at.element), ("x12.bad_isa", Some(1)));
}

#[test]
fn unsupported_sets_are_rejected_and_acks_ignored() {
    let ic = parse(small_214().replace("ST*214", "ST*850").as_bytes()).expect("envelope ok");
    assert_eq!(
        map(&ic, RECEIVED, None).expect_err("850").code(),
        "x12.unsupported_set"
    );
    let ack = ack_997(&ic, &AckResult::check(&ic), 3, NOW);
    assert!(
        ack.contains("AK2*850*0001~\nAK5*R*1~\nAK9*R*1*1*0~"),
        "{ack}"
    );
    let ic = parse(small_214().replace("ST*214", "ST*997").as_bytes()).expect("envelope ok");
    assert_eq!(
        map(&ic, RECEIVED, None).expect("997 maps to nothing"),
        vec![]
    );
}

#[test]
fn shipment_key_is_escaped_and_upper_cases_the_scac() {
    assert_eq!(shipment_key("abcd", "SHIP-1"), "x12:ABCD:SHIP-1");
    assert_eq!(
        shipment_key(" ABCD ", "A/B:C%D\u{7}"),
        "x12:ABCD:A%2FB%3AC%25D%07"
    );
}

#[test]
fn time_codes_give_offsets() {
    let stamp = |d: &str, t: &str, code: &str| timecode::Stamp {
        date: timecode::date(d).expect("date"),
        time: timecode::time_of_day(t),
        zone: timecode::zone(code).expect("known code"),
    };
    let given = |d: &str, t: &str, code: &str| local_time::as_given(&stamp(d, t, code));
    assert_eq!(given("20260115", "0705", "CT"), "2026-01-15T07:05:00-06:00");
    assert_eq!(given("20260310", "0705", "CT"), "2026-03-10T07:05:00-05:00");
    assert_eq!(given("20260308", "0159", "ET"), "2026-03-08T01:59:00-05:00");
    assert_eq!(given("20260308", "0200", "ET"), "2026-03-08T02:00:00-04:00");
    assert_eq!(given("20261101", "0200", "PT"), "2026-11-01T02:00:00-08:00");
    assert_eq!(
        given("20260115", "070530", "ND"),
        "2026-01-15T07:05:30-02:30"
    );
    assert_eq!(given("20260115", "0705305", "UT"), "2026-01-15T07:05:30.5Z");
    assert_eq!(given("20260115", "0705", "05"), "2026-01-15T07:05:00+05:00");
    assert_eq!(given("20260115", "0705", "13"), "2026-01-15T07:05:00-12:00");
    // A local time has no offset: it is never written as if it were UTC.
    assert_eq!(stamp("20260115", "0705", "LT").offset(), None);
    assert_eq!(given("20260115", "0705", "LT"), "2026-01-15T07:05:00");
    assert!(timecode::zone("XX").is_none() && timecode::zone("25").is_none());
    assert!(timecode::time_of_day("2400").is_none() && timecode::date("20260230").is_none());
}

#[test]
fn n2_amounts_keep_cents_exactly() {
    let a = |s: &str| Amount::parse_n2(s).map(|a| a.to_string());
    assert_eq!(a("48250").as_deref(), Some("482.50"));
    assert_eq!(a("5").as_deref(), Some("0.05"));
    assert_eq!(a("-1205").as_deref(), Some("-12.05"));
    assert_eq!(a("482.50"), None);
    assert_eq!(a("-"), None);
    assert_eq!(a("9999999999999999"), None);
}

#[test]
fn reasons_follow_events_md() {
    use vocabulary::reason;
    assert_eq!(reason("SD", true, Some("AO")), Some("weather_delay"));
    assert_eq!(reason("D1", true, Some("NS")), None);
    assert_eq!(reason("A7", true, Some("NS")), Some("consignee_refused"));
    assert_eq!(reason("A9", true, None), Some("carrier_damaged_parcel"));
    assert_eq!(reason("AM", false, Some("NS")), Some("unknown"));
    assert_eq!(
        reason("AM", false, Some("A2")),
        Some("consignee_incorrect_address")
    );
    assert_eq!(reason("SD", true, Some("Q9")), Some("unknown"));
}

#[test]
fn a_cancelled_ship_notice_maps_to_nothing() {
    let asn = include_str!("testdata/856_ship_notice.edi").replace("BSN*00*", "BSN*01*");
    let ic = parse(asn.as_bytes()).expect("parses");
    assert!(map(&ic, RECEIVED, None).expect("maps").is_empty());
    let no_ship_date = include_str!("testdata/856_ship_notice.edi").replace("DTM*011*", "DTM*067*");
    let drafts = map(
        &parse(no_ship_date.as_bytes()).expect("parses"),
        RECEIVED,
        None,
    )
    .expect("maps");
    assert_eq!(
        drafts.iter().map(|d| d.ty.as_str()).collect::<Vec<_>>(),
        ["warehouse.packed"]
    );
}

#[test]
fn reject_997_names_the_problem() {
    let ack = |input: &[u8]| {
        let e = parse(input)
            .and_then(|ic| map(&ic, RECEIVED, None).map(|_| ()))
            .expect_err("fails");
        reject_997(input, &e, 5, NOW)
    };
    let a = ack(include_bytes!("testdata/bad_segment_count.edi")).expect("set-level");
    assert!(a.contains("AK2*214*0001~\nAK5*R*4~\nAK9*R*1*1*0~"), "{a}");
    let a = ack(include_bytes!("testdata/control_number_mismatch.edi")).expect("group-level");
    assert!(a.contains("AK5*R~\nAK9*R*1*1*0*4~"), "{a}");
    let a = ack(include_bytes!("testdata/214_bad_date.edi")).expect("element-level");
    assert!(
        a.contains("AK3*AT7*4**8~\nAK4*5**8*20260231~\nAK5*R*5~"),
        "{a}"
    );
    assert!(ack(include_bytes!("testdata/truncated_isa.edi")).is_none());
    assert!(ack(small_214().replace("IEA*1*", "IEA*2*").as_bytes()).is_none());
}

#[test]
fn the_997_swaps_parties_and_reparses() {
    let ic = parse(STATUS_214).expect("fixture");
    let text = ack_997(&ic, &AckResult::check(&ic), 123, NOW);
    let back = parse(text.as_bytes()).expect("997 parses");
    assert_eq!(back.sender_id(), ic.receiver_id());
    assert_eq!(back.receiver_id(), ic.sender_id());
    assert_eq!(back.control_number(), "000000123");
    let group = back.groups.first().expect("one group");
    assert_eq!(
        (group.functional_id(), group.control_number()),
        ("FA", "123")
    );
    assert!(group.sets.iter().all(|s| s.id == "997"));
    assert!(
        text.contains("AK1*QM*905~\nAK2*214*0001~\nAK5*A~\nAK2*214*0002~\nAK5*A~\nAK9*A*2*2*2~"),
        "{text}"
    );
}

#[test]
fn check_rejects_every_set_when_one_fails() {
    let text = String::from_utf8_lossy(STATUS_214).replace("20260310*1800*CT", "20260310*2561*CT");
    let ic = parse(text.as_bytes()).expect("envelope is fine");
    let result = AckResult::check(&ic);
    assert!(!result.is_accepted());
    let ack = ack_997(&ic, &result, 9, NOW);
    let want = "AK2*214*0001~\nAK5*R~\nAK2*214*0002~\nAK3*AT7*9**8~\nAK4*6**9*2561~\nAK5*R*5~\nAK9*R*2*2*0~";
    assert!(ack.contains(want), "{ack}");
}

/// `small_214()` with ISA14 = 1: the sender asks for a TA1.
fn asking_for_ta1(edi: &str) -> String {
    edi.replace("*000000906*0*P*", "*000000906*1*P*")
}

#[test]
fn a_ta1_answers_the_envelope_when_the_sender_asks() {
    // Accepted: the 997 interchange carries TA1 A/000 after its ISA, echoing ISA13, ISA09
    // and ISA10, and our own parser reads it back (TA1 before the groups).
    let edi = asking_for_ta1(&small_214());
    let ic = parse(edi.as_bytes()).expect("fine");
    let ack = ack_997(&ic, &AckResult::check(&ic), 7, NOW);
    assert!(
        ack.contains("*000000007*0*P*>~\nTA1*000000906*260311*1400*A*000~\nGS*FA*"),
        "{ack}"
    );
    let back = parse(ack.as_bytes()).expect("our 997 with a TA1 parses");
    assert_eq!(back.interchange_acks.len(), 1);
    assert_eq!(back.groups.len(), 1);
    // Without ISA14 = 1, no TA1.
    let ic = parse(small_214().as_bytes()).expect("fine");
    assert!(!ack_997(&ic, &AckResult::check(&ic), 7, NOW).contains("TA1"));
    // A set rejected inside a sound envelope: the 997 rejects it, the TA1 accepts the
    // envelope.
    let bad_set = asking_for_ta1(SMALL_214);
    let e = parse_err(&bad_set);
    let ack = reject_997(bad_set.as_bytes(), &e, 7, NOW).expect("set-level");
    assert!(ack.contains("TA1*000000906*260311*1400*A*000~"), "{ack}");
    assert!(ack.contains("AK5*R*4~"), "{ack}");
    assert_eq!(
        reject_ta1(bad_set.as_bytes(), &e, 7, NOW),
        None,
        "a 997's business"
    );
    // A set error and a broken trailer: the TA1 rejects the envelope.
    let both = bad_set.replace("IEA*1*000000906", "IEA*1*000000907");
    let e = parse_err(&both);
    let ack = reject_997(both.as_bytes(), &e, 7, NOW).expect("set-level");
    assert!(ack.contains("TA1*000000906*260311*1400*R*001~"), "{ack}");
    // A group after the IEA: the 997 rejects what it can name, the TA1 the envelope.
    let after = edi.clone() + "GS*QM*X*Y*20260311*1400*907*X*004010~\n";
    let e = parse_err(&after);
    let ack = reject_997(after.as_bytes(), &e, 7, NOW).expect("the 997 names the groups");
    assert!(ack.contains("TA1*000000906*260311*1400*R*024~"), "{ack}");
}

#[test]
fn envelope_failures_get_a_ta1_alone_with_their_note_code() {
    let ta1 = |edi: &str| {
        let e = parse_err(edi);
        assert_eq!(reject_997(edi.as_bytes(), &e, 7, NOW), None, "{e}");
        reject_ta1(edi.as_bytes(), &e, 7, NOW)
    };
    let base = asking_for_ta1(&small_214());
    let cases = [
        (base.replace("IEA*1*000000906", "IEA*1*000000907"), "R*001"),
        (base.replace("IEA*1*", "IEA*2*"), "R*021"),
        (base.replace("IEA*1*", "IEA*x*"), "R*021"),
        (base.replace("IEA*1*000000906~\n", ""), "R*023"),
        (base.replace("IEA*1*000000906~", "IEA*1*000000906"), "R*023"),
        (base.replace("GE*1*906~\n", "GE*1*906~\nLX*1~\n"), "R*024"),
    ];
    for (edi, want) in &cases {
        let doc = ta1(edi).unwrap_or_else(|| panic!("a TA1 for {edi}"));
        // ISA with the parties swapped, the TA1, and an IEA counting no group.
        assert!(
            doc.starts_with(
                "ISA*00*          *00*          *ZZ*WAYBILLHUB     *02*ABCD           *"
            ),
            "{doc}"
        );
        assert!(
            doc.contains(&format!(
                "~\nTA1*000000906*260311*1400*{want}~\nIEA*0*000000007~"
            )),
            "{want}: {doc}"
        );
        let back = parse(doc.as_bytes()).expect("our TA1 interchange parses");
        assert_eq!((back.interchange_acks.len(), back.groups.len()), (1, 0));
    }
    // Not asked for (ISA14 = 0): nothing, as before.
    let plain = small_214().replace("IEA*1*", "IEA*2*");
    let e = parse_err(&plain);
    assert_eq!(reject_ta1(plain.as_bytes(), &e, 7, NOW), None);
    // An ISA that cannot be read: nothing to address a TA1 to.
    let broken = base.replacen("*U*00401*", "*U*0040X*", 1);
    let e = parse_err(&broken);
    assert_eq!(e.code(), "x12.bad_isa");
    assert_eq!(reject_ta1(broken.as_bytes(), &e, 7, NOW), None);
}

#[test]
fn received_ta1s_before_the_groups_map_to_nothing() {
    let edi = small_214().replace("~\nGS*QM*", "~\nTA1*000000123*260310*0900*A*000~\nGS*QM*");
    let ic = parse(edi.as_bytes()).expect("a TA1 before GS is allowed");
    assert_eq!(ic.interchange_acks.len(), 1);
    assert_eq!(
        map(&ic, RECEIVED, None).expect("maps").len(),
        1,
        "the AT7 only"
    );
    // After a group it is out of place.
    let late = small_214().replace("~\nIEA*", "~\nTA1*000000123*260310*0900*A*000~\nIEA*");
    let e = parse_err(&late);
    assert_eq!(
        (e.code(), e.at.segment_id.as_str()),
        ("x12.unexpected_segment", "TA1")
    );
}

#[test]
fn the_envelope_is_checked_even_when_the_parse_stopped_inside_a_group() {
    // SMALL_214 fails at its SE count (inside the set); what follows is checked for the TA1.
    let bad_set = asking_for_ta1(SMALL_214);
    let ta1_in = |edi: &str| {
        let e = parse_err(edi);
        let ack = reject_997(edi.as_bytes(), &e, 7, NOW).expect("a 997 names the set");
        ack.lines()
            .find(|l| l.starts_with("TA1*"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no TA1 in {ack}"))
    };
    let cases = [
        (bad_set.clone(), "A*000"),
        // a stray segment between the group and the IEA
        (
            bad_set.replace("GE*1*906~\n", "GE*1*906~\nLX*1~\n"),
            "R*024",
        ),
        // a TA1 after a group
        (
            bad_set.replace(
                "GE*1*906~\n",
                "GE*1*906~\nTA1*000000001*260311*1400*A*000~\n",
            ),
            "R*024",
        ),
        // the input ends inside the set: the trailer never came
        (
            bad_set[..bad_set.find("SE*7*").expect("SE") + 7].to_owned(),
            "R*023",
        ),
        // a segment id the tokenizer cannot read inside the set: it stops there
        (bad_set.replace("LX*1~", "lx*1~"), "R*024"),
        // the IEA miscounts
        (bad_set.replace("IEA*1*", "IEA*3*"), "R*021"),
        // a padded IEA02 is not the ISA13 (the parser compares it as it is)
        (
            bad_set.replace("IEA*1*000000906", "IEA*1*000000906 "),
            "R*001",
        ),
    ];
    for (edi, want) in &cases {
        assert_eq!(
            ta1_in(edi),
            format!("TA1*000000906*260311*1400*{want}~"),
            "{edi}"
        );
    }
}

#[test]
fn an_interchange_without_groups_gets_a_ta1_alone() {
    let only_ta1 = "ISA*00*          *00*          *02*ABCD           *ZZ*WAYBILLHUB     *260311*1400*U*00401*000000906*1*P*>~\nTA1*000000123*260310*0900*A*000~\nIEA*0*000000906~\n";
    let ic = parse(only_ta1.as_bytes()).expect("a TA1-only interchange");
    assert!(ic.groups.is_empty());
    let ack = ack_997(&ic, &AckResult::check(&ic), 7, NOW);
    assert!(
        ack.ends_with("~\nTA1*000000906*260311*1400*A*000~\nIEA*0*000000007~\n"),
        "{ack}"
    );
    assert!(!ack.contains("GS*"), "{ack}");
}

/// Found by the `x12` fuzz target: with `?` as the segment terminator, a control byte in
/// ISA08 was cleaned to `?` in the answer's ISA, ending the segment early, so our own TA1
/// did not parse. The replacement is a space when `?` is a delimiter.
#[test]
fn a_cleaned_character_never_becomes_a_delimiter() {
    let edi = asking_for_ta1(&small_214())
        .replace("WAYBILLHUB     *", "WA\u{7}BILLHUB     *")
        .replace('~', "?")
        .replace("IEA*1*000000906", "IEA*1*000000907");
    let e = parse_err(&edi);
    assert_eq!(e.code(), "x12.control_number_mismatch");
    let ta1 = reject_ta1(edi.as_bytes(), &e, 7, NOW).expect("a TA1");
    assert!(ta1.contains("*ZZ*WA BILLHUB     *02*"), "{ta1}");
    let back = parse(ta1.as_bytes()).expect("our TA1 parses");
    assert_eq!(back.interchange_acks.len(), 1);
}
