use super::*;
use proptest::prelude::*;

const CARRIER: &str = r#"
  .events[] | {type: (if .status == "DL" then "shipment.delivered" else "shipment.in_transit" end),
               subject: ("ups:" + $root.tracking), key: .id, time: .at, code: .status,
               refs: {tracking: $root.tracking}}
"#;

fn program(code: &str) -> Program {
    Program::compile(&format!(". as $root | {code}")).expect("compiles")
}

#[test]
fn one_payload_maps_to_several_drafts() {
    let p = Payload::parse(
        br#"{"tracking": "1Z9", "events": [{"id": "a", "status": "IT", "at": "2026-11-23T08:00:00Z"},
                                         {"id": "b", "status": "DL", "at": "2026-11-23T12:00:00Z"}]}"#,
    )
    .expect("json");
    let drafts = program(CARRIER).run(&p, &[], "ups").expect("maps");
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[1].ty, "shipment.delivered");
    assert_eq!(drafts[1].subject, "ups:1Z9");
    assert_eq!(drafts[1].key.as_deref(), Some("b"));
}

#[test]
fn headers_and_source_are_variables() {
    let p = Payload::parse(b"{}").expect("json");
    let prog =
        Program::compile(r#"{type: "shipment.booked", subject: $headers["x-ref"], key: $source}"#)
            .expect("compiles");
    let d = prog
        .run(&p, &[("X-Ref".into(), "S-1".into())], "wms")
        .expect("maps");
    assert_eq!(d[0].subject, "S-1");
    assert_eq!(d[0].key.as_deref(), Some("wms"));
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let e = Program::compile("{type: .a,\n  subject: }").expect_err("bad program");
    assert_eq!(e.code(), "mapping.compile");
    assert!(e.to_string().contains("2:"), "{e}");
    let e = Program::compile(".a | nosuchfn").expect_err("undefined");
    assert!(e.to_string().contains("nosuchfn"), "{e}");
}

#[test]
fn runtime_and_output_errors_are_distinguished() {
    let p = Payload::parse(br#"{"a": 1}"#).expect("json");
    let e = Program::compile(r#"error("no status")"#)
        .expect("compiles")
        .run(&p, &[], "s")
        .expect_err("runtime");
    assert_eq!(e.code(), "mapping.runtime");
    let e = Program::compile(r#"{subject: "x"}"#)
        .expect("compiles")
        .run(&p, &[], "s")
        .expect_err("missing type");
    assert_eq!(e.code(), "mapping.bad_output");
    let e = Program::compile("empty")
        .expect("compiles")
        .run(&p, &[], "s")
        .expect_err("nothing");
    assert_eq!(e, MappingError::Empty);
}

#[test]
fn invalid_json_reports_its_position() {
    let e = Payload::parse(b"{\"a\": \n  tru}").err().expect("bad json");
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(Payload::parse(b"{} # comment").is_err());
}

proptest! {
    #[test]
    fn mapping_is_deterministic_and_never_panics(tracking in "[A-Z0-9]{1,12}", statuses in prop::collection::vec("[A-Z]{2}", 0..6)) {
        let events: Vec<serde_json::Value> = statuses.iter().enumerate()
            .map(|(i, s)| serde_json::json!({"id": i.to_string(), "status": s, "at": "2026-11-23T08:00:00Z"}))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"tracking": tracking, "events": events})).expect("json");
        let p = Payload::parse(&body).expect("json");
        let prog = program(CARRIER);
        let a = prog.run(&p, &[], "ups");
        let b = prog.run(&p, &[], "ups");
        prop_assert_eq!(&a, &b);
        match a {
            Ok(d) => prop_assert_eq!(d.len(), statuses.len()),
            Err(e) => prop_assert!(statuses.is_empty() && e == MappingError::Empty),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = Payload::parse(&bytes) {
            let _ = program(CARRIER).run(&p, &[], "ups");
        }
    }
}
