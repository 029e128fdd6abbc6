//! What the drafts carry and how they are identified: keys from the facts (never the
//! envelope), local times, the 856's lines and totals, the 214's AT8, the 210's details.

use super::*;
use serde_json::{json, Value};
use time::macros::{datetime, offset};
use time::UtcOffset;
use waybill_model::draft::Origin;
use waybill_model::EventDraft;

const RECEIVED: time::OffsetDateTime = datetime!(2026-03-12 15:00:00 UTC);
const STATUS_214: &str = include_str!("testdata/214_shipment_status.edi");
const NOTICE_856: &str = include_str!("testdata/856_ship_notice.edi");
const PARTIAL_856: &str = include_str!("testdata/856_partial_shipment.edi");
const INVOICE_210: &str = include_str!("testdata/210_freight_invoice.edi");

fn drafts(edi: &str, local_offset: Option<UtcOffset>) -> Vec<EventDraft> {
    let ic = parse(edi.as_bytes()).expect("parses");
    map(&ic, RECEIVED, local_offset).expect("maps")
}

fn data(d: &EventDraft) -> &Value {
    d.data.as_ref().expect("data")
}

/// The same documents in another interchange: new ISA13/IEA02, GS06/GE02 and ST02/SE02
/// (what a carrier re-sending its history does). The fixtures use `*` and `~` + LF.
fn resent(edi: &str) -> String {
    let renumber = |line: &str| -> String {
        let mut e: Vec<String> = line.split('*').map(str::to_owned).collect();
        let field = match e.first().map(String::as_str) {
            Some("ISA") => 13,
            Some("GS") => 6,
            Some("GE" | "IEA" | "ST" | "SE") => 2,
            _ => return line.to_owned(),
        };
        if let Some(v) = e.get_mut(field) {
            let digits = v.trim_end_matches('~');
            let n: u64 = digits.parse().expect("numeric control number");
            let tail = &v[digits.len()..];
            *v = format!("{:0width$}{tail}", n + 70, width = digits.len());
        }
        e.join("*")
    };
    let out: Vec<String> = edi.split('\n').map(renumber).collect();
    let out = out.join("\n");
    assert_ne!(out, edi);
    out
}

/// Event ids as the engine derives them, for a given source and payload key.
fn ids(drafts: &[EventDraft], source: &str, payload_key: &str) -> Vec<String> {
    let origin = Origin {
        source,
        payload_key,
        received_at: RECEIVED,
        traceparent: None,
    };
    drafts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let e = d.clone().into_event(i, &origin).expect("valid event");
            e.id.as_str().to_owned()
        })
        .collect()
}

#[test]
fn documents_resent_in_a_new_interchange_keep_their_keys_and_event_ids() {
    for edi in [STATUS_214, NOTICE_856, PARTIAL_856, INVOICE_210] {
        let again = resent(edi);
        let first = parse(edi.as_bytes()).expect("parses");
        let second = parse(again.as_bytes()).expect("re-sent parses");
        assert_ne!(first.payload_key(), second.payload_key());
        let (a, b) = (drafts(edi, None), drafts(&again, None));
        assert!(!a.is_empty());
        let keys = |ds: &[EventDraft]| ds.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        for k in keys(&a).into_iter().flatten() {
            for envelope in ["905", "0001", "101", "412"] {
                assert!(!k.contains(&format!(":{envelope}:")), "{k}");
            }
        }
        // Over HTTP (source `x12`) and as a dropped file (source `file_drop`): one event.
        assert_eq!(
            ids(&a, "x12", &first.payload_key()),
            ids(&b, "file_drop", &second.payload_key())
        );
    }
}

#[test]
fn the_http_adapter_adds_no_envelope_to_the_keys() {
    let mapped = crate::inbound::x12_mapped(STATUS_214.as_bytes(), RECEIVED, None).expect("maps");
    assert_eq!(mapped.payload_key, "x12:ABCD:WAYBILLHUB:260311:000000905");
    let keys: Vec<_> = mapped.drafts.iter().map(|d| d.key.clone()).collect();
    let direct: Vec<_> = drafts(STATUS_214, None)
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, direct);
}

#[test]
fn a_214_status_is_keyed_by_its_fact() {
    let d = drafts(STATUS_214, None);
    let x4 = d
        .iter()
        .find(|d| d.code.as_deref() == Some("X4"))
        .expect("X4");
    let want = waybill_model::fact_key(
        waybill_model::EventType::ShipmentInTransit,
        "2026-03-10T06:30:00Z",
        Some("X4"),
        Some(&json!({"city": "CHARLOTTE", "state": "NC", "country": "US"})),
    );
    assert_eq!(x4.key.as_deref(), Some(want.as_str()));
}

#[test]
fn a_local_time_without_an_offset_is_dated_when_received() {
    let d = drafts(STATUS_214, None);
    let p1 = d
        .iter()
        .find(|d| d.code.as_deref() == Some("P1"))
        .expect("P1");
    assert_eq!(p1.time.as_deref(), Some("2026-03-12T15:00:00Z"));
    assert_eq!(data(p1)["local_time"], "2026-03-10T05:45:00");
    assert_eq!(data(p1)["time_zone"], "local_unknown");
    assert!(data(p1).get("utc_offset").is_none());
    assert!(
        p1.key
            .as_deref()
            .is_some_and(|k| k.contains("\"local:2026-03-10T05:45:00\"")),
        "{:?}",
        p1.key
    );
}

#[test]
fn a_local_time_with_a_configured_offset_is_converted() {
    let without = drafts(STATUS_214, None);
    let with = drafts(STATUS_214, Some(offset!(-6:00)));
    let p1 = with
        .iter()
        .find(|d| d.code.as_deref() == Some("P1"))
        .expect("P1");
    assert_eq!(p1.time.as_deref(), Some("2026-03-10T05:45:00-06:00"));
    assert_eq!(data(p1)["time_zone"], "configured");
    assert_eq!(data(p1)["local_time"], "2026-03-10T05:45:00");
    assert_eq!(data(p1)["utc_offset"], "-06:00");
    // Times with a zone are not touched, and identity does not depend on the setting.
    let x4 = |ds: &[EventDraft]| {
        ds.iter()
            .find(|d| d.code.as_deref() == Some("X4"))
            .map(|d| d.time.clone())
    };
    assert_eq!(x4(&with), x4(&without));
    let keys = |ds: &[EventDraft]| ds.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&with), keys(&without));
}

#[test]
fn the_local_time_offset_setting_is_a_fixed_utc_offset() {
    assert_eq!(parse_offset("-06:00"), Ok(offset!(-6:00)));
    assert_eq!(parse_offset("+05:30"), Ok(offset!(+5:30)));
    assert_eq!(parse_offset("+00:00"), Ok(UtcOffset::UTC));
    assert_eq!(parse_offset("+14:00"), Ok(offset!(+14:00)));
    for bad in [
        "-6", "06:00", "-06:60", "+15:00", "-0600", "Z", "CST", "-é:00", "",
    ] {
        assert!(parse_offset(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_x12_source_rejects_a_bad_local_time_offset() {
    let cfg = |offset: &str| -> crate::X12Config {
        serde_json::from_value(json!({
            "auth": {"type": "api_key", "keys": ["plain:k"]},
            "local_time_offset": offset,
        }))
        .expect("config shape")
    };
    assert!(crate::inbound::x12(&cfg("+01:00")).is_ok());
    let errs = crate::inbound::x12(&cfg("CST")).err().expect("rejected");
    assert!(
        errs.iter()
            .any(|e| e.path == "local_time_offset" && e.message.starts_with("`CST`")),
        "{errs:?}"
    );
}

#[test]
fn an_at8_gives_its_loop_and_else_the_shipment_weight_and_pieces() {
    let d = drafts(STATUS_214, None);
    let d1 = d
        .iter()
        .find(|d| d.code.as_deref() == Some("D1"))
        .expect("D1");
    assert_eq!(
        data(d1)["weight"],
        json!({"value": 31.5, "unit": "L", "qualifier": "G"})
    );
    assert_eq!(data(d1)["pieces"], 2);
    // The other statuses of that shipment have no AT8 of their own or of the shipment.
    let af = d
        .iter()
        .find(|d| d.code.as_deref() == Some("AF"))
        .expect("AF");
    assert!(data(af).get("weight").is_none() && data(af).get("pieces").is_none());
    // SHIP-1002's AT8 comes before its first LX: every status of it carries it.
    for st in d.iter().filter(|d| d.subject == "x12:ABCD:SHIP-1002") {
        assert_eq!(
            data(st)["weight"],
            json!({"value": 120, "unit": "K", "qualifier": "G"})
        );
        assert_eq!(
            (&data(st)["pieces"], &data(st)["unitized_pieces"]),
            (&json!(3), &json!(1))
        );
        assert_eq!(data(st)["volume"], json!({"value": 14.2, "unit": "E"}));
    }
}

#[test]
fn a_partial_856_lists_its_lines_totals_and_says_partial() {
    let d = drafts(PARTIAL_856, None);
    let packed = d
        .iter()
        .find(|d| d.ty == "warehouse.packed")
        .expect("packed");
    let data = data(packed);
    assert_eq!(
        data["lines"],
        json!([{
            "hl": "4", "parent": "3", "line": "1",
            "ids": {"upc": "012345678905", "sku": "SKU-RED-M"},
            "po": "PO-4500099999",
            "shipped": 6, "ordered": 10, "backordered": 4, "unit": "EA",
            "pack": {"pack": 6, "size": 1, "unit": "EA", "packaging": "CTN25"},
            "description": "RED T-SHIRT SIZE M",
        }])
    );
    let totals =
        json!({"shipped_units": 6, "ordered_units": 10, "backordered_units": 4, "unit": "EA"});
    assert_eq!(data["totals"], totals);
    assert_eq!(data["partial"], true);
    // The shipment's TD1: one carton and its gross weight.
    assert_eq!(
        (&data["packaging"], &data["pieces"]),
        (&json!("CTN25"), &json!(1))
    );
    assert_eq!(
        data["weight"],
        json!({"value": 12.4, "unit": "LB", "qualifier": "G"})
    );
    let package = &data["packages"][0];
    assert_eq!(package["sscc"], "000614141000000038");
    assert_eq!(
        package["dimensions"]["length"],
        json!({"value": 16, "unit": "IN"})
    );
    assert_eq!(
        (packed.refs.get("bol"), packed.refs.get("pro")),
        (Some(&"BOL-66001".to_owned()), Some(&"PRO-66001".to_owned()))
    );
    // The dispatch says it too.
    let dispatched = d
        .iter()
        .find(|d| d.ty == "shipment.dispatched")
        .expect("dispatched");
    assert_eq!(self::data(dispatched)["totals"], totals);
    assert_eq!(self::data(dispatched)["partial"], true);
    // A complete shipment is not partial.
    let full = PARTIAL_856.replace("SN1**6*EA**10*EA", "SN1**10*EA**10*EA");
    let d = drafts(&full, None);
    assert!(d.iter().all(|d| self::data(d).get("partial").is_none()));
    assert_eq!(self::data(&d[0])["totals"]["backordered_units"], 0);
}

#[test]
fn packed_is_never_dated_after_shipped() {
    // BSN 10:00, shipped (DTM 011) 08:00, both local: with an offset, two instants.
    let d = drafts(PARTIAL_856, Some(offset!(-5:00)));
    let (packed, dispatched) = (&d[0], &d[1]);
    assert_eq!(
        dispatched.time.as_deref(),
        Some("2026-03-09T08:00:00-05:00")
    );
    assert_eq!(packed.time, dispatched.time);
    assert_eq!(
        data(packed)["time_adjusted"],
        json!({"from": "2026-03-09T10:00:00", "rule": "packed_not_after_shipped"})
    );
    // Without an offset both are unplaced: the wall clocks are compared.
    let d = drafts(PARTIAL_856, None);
    assert_eq!(data(&d[0])["local_time"], "2026-03-09T08:00:00");
    assert_eq!(data(&d[0])["time_adjusted"]["from"], "2026-03-09T10:00:00");
    // BSN local (unplaced, dated at receipt) and the shipped time with a zone: the wall
    // clocks are compared, not the receipt time with the shipped instant.
    let zoned = PARTIAL_856.replace("DTM*011*20260309*0800~", "DTM*011*20260309*1400*ET~");
    let d = drafts(&zoned, None);
    assert!(data(&d[0]).get("time_adjusted").is_none(), "{:?}", d[0]);
    assert_eq!(data(&d[0])["local_time"], "2026-03-09T10:00:00");
    // its own instant is unknown: dated at the shipped instant, never after it
    assert_eq!(d[0].time, d[1].time);
    let zoned_early = PARTIAL_856.replace("DTM*011*20260309*0800~", "DTM*011*20260309*0800*ET~");
    let d = drafts(&zoned_early, None);
    assert_eq!(data(&d[0])["time_adjusted"]["from"], "2026-03-09T10:00:00");
    // A notice made before the goods left keeps its own time.
    let early = PARTIAL_856.replace("20260309*1000*0001", "20260309*0700*0001");
    let d = drafts(&early, Some(offset!(-5:00)));
    assert_eq!(d[0].time.as_deref(), Some("2026-03-09T07:00:00-05:00"));
    assert!(data(&d[0]).get("time_adjusted").is_none());
}

#[test]
fn a_210_carries_weight_class_parties_and_dates_and_is_dated_at_its_invoice() {
    let d = drafts(INVOICE_210, Some(offset!(-5:00)));
    let [invoice] = d.as_slice() else {
        panic!("one draft: {d:?}")
    };
    assert_eq!(invoice.key.as_deref(), Some("210:ABCD:INV-88123"));
    assert_eq!(invoice.time.as_deref(), Some("2026-03-12T00:00:00-05:00"));
    let data = data(invoice);
    assert_eq!(data["time_zone"], "configured");
    assert_eq!(data["local_time"], "2026-03-12");
    assert_eq!(
        data["weight"],
        json!({"value": 31.5, "unit": "L", "qualifier": "G"})
    );
    assert_eq!(data["pieces"], 2);
    assert_eq!(data["freight_class"], "70");
    assert_eq!(data["items"][0]["freight_class"], "70");
    assert_eq!(
        data["items"][0]["commodity"],
        json!({"code": "156600", "qualifier": "N"})
    );
    assert_eq!(
        data["dates"],
        json!({"delivery": "2026-03-11", "shipped": "2026-03-09"})
    );
    assert_eq!(data["parties"]["bill_to"]["name"], "ACME CORP PAYABLES");
    assert_eq!(data["parties"]["shipper"]["id"], "WH01");
    assert_eq!(
        data["parties"]["consignee"],
        json!({"code": "CN", "name": "BIG STORE 42", "id_qualifier": "93", "id": "0042",
               "city": "RALEIGH", "state": "NC", "postal_code": "27601", "country": "US"})
    );
    assert_eq!(data["charges"].as_array().map(Vec::len), Some(3));
    // Without an offset: the receipt time, the date kept as given.
    let d = drafts(INVOICE_210, None);
    assert_eq!(d[0].time.as_deref(), Some("2026-03-12T15:00:00Z"));
    assert_eq!(self::data(&d[0])["local_time"], "2026-03-12");
    assert_eq!(self::data(&d[0])["time_zone"], "local_unknown");
}

#[test]
fn bad_numbers_in_the_new_segments_are_element_errors() {
    let bad = PARTIAL_856.replace("SN1**6*EA", "SN1**SIX*EA");
    let ic = parse(bad.as_bytes()).expect("envelope is fine");
    let e = map(&ic, RECEIVED, None).expect_err("not a number");
    assert_eq!(
        (e.code(), e.at.segment_id.as_str(), e.at.element),
        ("x12.bad_element", "SN1", Some(2))
    );
    let bad = STATUS_214.replace("AT8*G*L*31.5*2", "AT8*G*L*31,5*2");
    let ic = parse(bad.as_bytes()).expect("envelope is fine");
    let e = map(&ic, RECEIVED, None).expect_err("not a number");
    assert_eq!(
        (e.code(), e.at.segment_id.as_str(), e.at.element),
        ("x12.bad_element", "AT8", Some(3))
    );
}

#[test]
fn quantities_are_exact_decimals() {
    let q = |s: &str| Quantity::parse(s).expect(s);
    assert_eq!(
        q("10.5")
            .checked_sub(q("6.2"))
            .map(|d| d.to_string())
            .as_deref(),
        Some("4.3")
    );
    assert_eq!(q("31.50").to_json(), json!(31.5));
    assert_eq!(q("007").to_json(), json!(7));
    assert_eq!(q("-2").to_string(), "-2");
    assert_eq!(q(".5").to_string(), "0.5");
    for bad in ["", "-", ".", "1.2.3", "1e3", "12a", "1234567890123456"] {
        assert!(Quantity::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn a_status_in_year_9999_west_of_utc_is_mapped_without_a_panic() {
    // Found by the x12 fuzz target on its own regression seed: the fact key's UTC text
    // of 9999-12-31 23:15 -05:00 is past year 9999.
    let edi = include_bytes!("../../../../fuzz/seeds/x12/regress_year9999_negative_offset.edi");
    let ic = crate::x12::parse(edi).expect("the seed parses");
    let received = time::OffsetDateTime::UNIX_EPOCH;
    // An answer either way (drafts, or an element error), never a panic.
    let _ = crate::x12::map(&ic, received, None);
    let _ = crate::x12::AckResult::check(&ic);
}
