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

/// Outputs become JSON directly: numbers (integers, floats, big integers), nested arrays
/// and objects, strings with escapes, and nulls keep their JSON meaning; a program that
/// never names `$headers` still runs when headers are passed.
#[test]
fn outputs_keep_their_json_values() {
    let p = Program::compile(
        r#"{n: 3, f: 2.5, one: 1.0, big: 123456789012345678901234567890, s: "a\"b\u00e9",
            a: [1, [null, true]], o: {k: .x}, neg: -7}"#,
    )
    .expect("compiles");
    assert!(!p.uses_headers());
    let out = p
        .run_values(
            &Payload::parse(br#"{"x": {"deep": [1, 2]}}"#).expect("json"),
            &[("X-Ref".into(), "R1".into())],
            "src",
        )
        .expect("runs");
    assert_eq!(out.len(), 1);
    let v = &out[0];
    assert_eq!(v["n"], serde_json::json!(3));
    assert_eq!(v["f"], serde_json::json!(2.5));
    assert_eq!(v["neg"], serde_json::json!(-7));
    assert!(
        v["big"].as_f64().is_some_and(|b| b > 1.2e29),
        "{}",
        v["big"]
    );
    assert_eq!(v["one"], serde_json::json!(1.0));
    assert_eq!(v["s"], serde_json::json!("a\"bé"));
    assert_eq!(v["a"], serde_json::json!([1, [null, true]]));
    assert_eq!(v["o"], serde_json::json!({"k": {"deep": [1, 2]}}));
}

/// What is not JSON is refused as before (it used to fail when its jq text was parsed as
/// JSON): non-finite numbers, numbers out of range, byte strings, non-string keys.
#[test]
fn outputs_that_are_not_json_are_refused() {
    for code in [
        "{type: nan}",
        "{type: infinite}",
        "{type: 1e400}",
        r#"{type: ("ab" | tobytes)}"#,
        "{(1): 2}",
    ] {
        let p = Program::compile(code).expect("compiles");
        let err = p
            .run_values(&Payload::parse(b"{}").expect("json"), &[], "src")
            .expect_err(code);
        assert_eq!(err.code(), "mapping.bad_output", "{code}: {err}");
    }
    // Accepted exactly when serde_json reads the text back (127 nested containers).
    for n in 120..135 {
        let p = Program::compile(&format!("reduce range({n}) as $i (1; [.])")).expect("compiles");
        let out = p.run_values(&Payload::parse(b"{}").expect("json"), &[], "src");
        let text = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let readable = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        assert_eq!(out.is_ok(), readable, "{n} levels");
    }
}

/// A value built deeper than any payload can be is refused, not a stack overflow.
#[test]
fn outputs_nested_too_deep_are_refused() {
    let p = Program::compile(r#"reduce range(1000) as $i (1; [.])"#).expect("compiles");
    let err = p
        .run_values(&Payload::parse(b"{}").expect("json"), &[], "src")
        .expect_err("too deep");
    assert_eq!(err.code(), "mapping.bad_output", "{err}");
}
