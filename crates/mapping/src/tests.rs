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

/// The plain shape is evaluated directly; anything else is left to jaq.
#[test]
fn plain_mappings_are_evaluated_directly() {
    for code in [
        r#"{type: .status, subject: .shipment, time: .at, key: .id, refs: {tracking: .tracking}}"#,
        ".id",
        r#"{type: (.status // "shipment.exception"), subject: ("trk:" + .t), src: $source}"#,
        r#"{a: $headers["x-ref"], b: .x."y-z"["w"], c: (.p | .q), d: null, e: true, f: false, id}"#,
    ] {
        assert!(Program::compile(code).expect(code).is_direct(), "{code}");
    }
    assert!(!program(CARRIER).is_direct());
    for code in [
        ".events[]",
        "{n: 3}",
        r#"{a: .x?}"#,
        r#"{a: "\(.x)"}"#,
        r#"{(.k): 1}"#,
        "def f: .a; {a: f}",
        "{a: .x | ascii_downcase}",
        ". as $r | {a: $r.x}",
        "{a: (.x == .y)}",
    ] {
        assert!(!Program::compile(code).expect(code).is_direct(), "{code}");
    }
}

/// Directly and by jaq: the same outputs, or the same error, byte for byte.
fn same_as_jaq(prog: &Program, payload: &Payload, headers: &[(String, String)]) {
    let direct = prog.run_values(payload, headers, "src");
    let jaq = prog.run_values_interpreted(payload, headers, "src");
    match (&direct, &jaq) {
        (Ok(a), Ok(b)) => assert_eq!(
            serde_json::to_string(a).expect("json"),
            serde_json::to_string(b).expect("json")
        ),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("direct {direct:?} but jaq {jaq:?}"),
    }
}

#[test]
fn direct_answers_are_jaqs_answers_on_edge_cases() {
    let headers = [("X-Ref".to_string(), "R1".to_string())];
    for (code, body) in [
        // Indexing a string or a number is jaq's error.
        (r#"{a: .x.y}"#, r#"{"x": "text"}"#),
        (r#"{a: .x.y}"#, r#"{"x": 5}"#),
        (".a", "[1, 2]"),
        // `+` of a string and a number is jaq's error; of objects a merge; of nulls null.
        (r#"{a: ("s" + .n)}"#, r#"{"n": 1}"#),
        (
            r#"{a: (.o + .p)}"#,
            r#"{"o": {"k": 1, "j": 2}, "p": {"k": 3}}"#,
        ),
        (r#"{a: (.n + .m)}"#, r#"{"n": 1, "m": 2.5}"#),
        (r#"{a: (.x + .y)}"#, "{}"),
        // A repeated key keeps its last value.
        (r#"{a: .x, a: .y}"#, r#"{"x": 1, "y": 2}"#),
        // `//` falls through null and false only.
        (
            r#"{a: (.f // "d"), b: (.z // "d"), c: (.e // "d")}"#,
            r#"{"f": false, "e": ""}"#,
        ),
        // Big integers, floats and strings with escapes come out as jaq gives them.
        (
            ".",
            r#"{"b": 123456789012345678901, "u": 18446744073709551615, "f": 1.5e300, "s": "é\n\u0000"}"#,
        ),
        // Headers only when named.
        (r#"{h: $headers, r: $headers["x-ref"], s: $source}"#, "{}"),
        // Not an object at all.
        (r#"{type: .a}"#, "null"),
        (r#"{type: .a}"#, "true"),
    ] {
        let prog = Program::compile(code).expect(code);
        assert!(prog.is_direct(), "{code}");
        same_as_jaq(
            &prog,
            &Payload::parse(body.as_bytes()).expect(body),
            &headers,
        );
    }
}

/// Keys the generated programs name, as written in jq (`x-y` needs quotes).
const PROGRAM_KEYS: [&str; 5] = ["a", "b", "id", "\"x-y\"", "type"];
/// The same keys as they appear in payloads.
const PAYLOAD_KEYS: [&str; 5] = ["a", "b", "id", "x-y", "type"];

/// Programs of the plain shape, as text.
fn plain_program() -> impl Strategy<Value = String> {
    let key = prop::sample::select(&PROGRAM_KEYS[..]);
    let leaf = prop_oneof![
        Just(".".to_string()),
        key.clone().prop_map(|k| format!(".{k}")),
        key.clone().prop_map(|k| format!(".[{}]", quoted(k))),
        prop::sample::select(vec!["\"lit\"", "\"\"", "\"é\\n\"", "null", "true", "false"])
            .prop_map(str::to_string),
        Just("$source".to_string()),
        Just("$headers".to_string()),
        Just("$headers[\"x-ref\"]".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, move |inner| {
        let key = prop::sample::select(&PROGRAM_KEYS[..]);
        prop_oneof![
            prop::collection::vec((key.clone(), inner.clone(), any::<bool>()), 0..4).prop_map(
                |entries| {
                    let body: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v, short)| {
                            if short {
                                k.to_string()
                            } else {
                                format!("{k}: ({v})")
                            }
                        })
                        .collect();
                    format!("{{{}}}", body.join(", "))
                }
            ),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} | {r})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} + {r})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} // {r})")),
            (inner, key).prop_map(|(b, k)| format!("({b}).{k}")),
        ]
    })
}

fn quoted(k: &str) -> String {
    if k.starts_with('"') {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// Payloads whose keys the programs above name.
fn payload_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop::sample::select(vec!["", "lit", "é", "S-1"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&PAYLOAD_KEYS[..]), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

proptest! {
    #[test]
    fn direct_evaluation_gives_jaqs_answer(code in plain_program(), body in payload_json()) {
        let prog = Program::compile(&code).expect("compiles");
        prop_assert!(prog.is_direct(), "{}", code);
        let bytes = serde_json::to_vec(&body).expect("json");
        let payload = Payload::parse(&bytes).expect("json");
        same_as_jaq(&prog, &payload, &[("X-Ref".into(), "R1".into())]);
    }
}
