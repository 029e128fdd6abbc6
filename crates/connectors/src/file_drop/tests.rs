#![allow(clippy::unwrap_used)]

use super::*;

pub(crate) const MAPPING: &str = r#"
({"SHIPPED": "shipment.dispatched", "PACKED": "warehouse.packed"}[.status]
   // error("unknown status `\(.status)`")) as $t
| {type: $t, subject: ("x12:" + .scac + ":" + .shipment_id), time: .shipped_at,
   code: .status, refs: ({tracking: .tracking} | with_entries(select(.value != ""))),
   data: {cartons: (.carton_count | tonumber)}}
"#;

fn drop_source(dir: &Path) -> FileDrop {
    FileDrop::build(
        "threepl",
        &FileDropConfig {
            dir: dir.to_path_buf(),
            formats: vec!["csv".into()],
            mapping: Some(MAPPING.into()),
            poll: Duration::from_millis(50),
            delimiter: ',',
            max_file_bytes: 1 << 20,
            local_time_offset: None,
        },
    )
    .unwrap()
}

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/file_drop/testdata/3pl_confirmations.csv"
    ))
    .unwrap()
}

#[test]
fn good_rows_map_and_bad_rows_name_their_line() {
    let src = drop_source(Path::new("."));
    let b = src.read("3pl_confirmations.csv", &sample(), "file:abc");
    let subjects: Vec<&str> = b.drafts.iter().map(|d| d.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "x12:ABCD:SHP-1001",
            "x12:ABCD:SHP-1002",
            "x12:ABCD:SHP-1006"
        ]
    );
    assert_eq!(b.drafts[0].ty, "shipment.dispatched");
    // a timed status row is identified by its fact, not by the file
    assert_eq!(b.drafts[0].key, None);
    assert!(b.drafts[0].identified_by_fact());
    assert_eq!(
        b.drafts[0].refs.get("tracking").map(String::as_str),
        Some("1Z999AA10123456784")
    );
    assert!(b.drafts[1].refs.is_empty());
    let errs: Vec<(u64, &str)> = b.errors.iter().map(|e| (e.line, e.code.as_str())).collect();
    assert_eq!(
        errs,
        vec![
            (4, "mapping.runtime"),
            (5, "mapping.bad_output"),
            (6, "csv.bad_row")
        ]
    );
    assert!(
        b.errors[0].reason.contains("TELEPORTED"),
        "{:?}",
        b.errors[0]
    );
    assert!(
        b.errors[1].reason.contains("yesterday"),
        "{:?}",
        b.errors[1]
    );
    assert_eq!(b.errors[2].raw, "SHP-1005,ABCD,SHIPPED");
}

#[test]
fn a_file_without_a_header_or_rows_is_reported() {
    let src = drop_source(Path::new("."));
    let b = src.read("empty.csv", b"", "file:e");
    assert!(b.drafts.is_empty());
    let b = src.read("header-only.csv", b"shipment_id,scac,status\n", "file:h");
    assert!(b.drafts.is_empty() && b.errors.is_empty());
}

#[test]
fn a_bad_mapping_is_a_configuration_error() {
    let errs = FileDrop::build(
        "x",
        &FileDropConfig {
            dir: ".".into(),
            formats: vec!["csv".into(), "pdf".into()],
            mapping: Some("{type: ".into()),
            poll: Duration::from_secs(1),
            delimiter: ',',
            max_file_bytes: 1,
            local_time_offset: None,
        },
    )
    .err()
    .unwrap();
    assert!(errs.iter().any(|e| e.path == "mapping"), "{errs:?}");
    assert!(errs.iter().any(|e| e.path == "formats"), "{errs:?}");
}

#[test]
fn the_local_time_offset_for_x12_files_is_validated() {
    let cfg = |offset: &str| FileDropConfig {
        dir: ".".into(),
        formats: vec!["x12".into()],
        mapping: None,
        poll: Duration::from_secs(1),
        delimiter: ',',
        max_file_bytes: 1,
        local_time_offset: Some(offset.into()),
    };
    let src = FileDrop::build("edi", &cfg("-06:00")).unwrap();
    assert_eq!(src.local_offset, Some(time::macros::offset!(-6:00)));
    let errs = FileDrop::build("edi", &cfg("6h")).err().unwrap();
    assert!(
        errs.iter()
            .any(|e| e.path == "local_time_offset" && e.message.starts_with("`6h`")),
        "{errs:?}"
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let src = drop_source(Path::new("."));
        let _ = src.read("fuzz.csv", &bytes, "file:f");
    }
}
