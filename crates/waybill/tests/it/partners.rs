//! Partner formats over the real server: X12 with its 997, EasyPost webhooks, and a CSV
//! file drop that joins the same shipment's timeline as an EDI 214.

use crate::*;
use std::path::Path;
use waybill_connectors::carrier::{CarrierFormat, CARRIERS};
use waybill_testkit::FakePartner;

pub(crate) const CONNECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../connectors/src");
pub(crate) const EASYPOST_SECRET: &str = "easypost-webhook-secret";

fn extra_sources(drop_dir: &Path) -> String {
    format!(
        r#"
[sources.edi]
type = "x12"
auth = {{ type = "api_key", keys = ["plain:edi-key"] }}
local_time_offset = "-05:00"
{carriers}[sources.threepl]
type = "file_drop"
dir = "{dir}"
formats = ["csv", "x12"]
poll = "50ms"
mapping = '''
({{"SHIPPED": "shipment.dispatched", "PACKED": "warehouse.packed"}}[.status]
   // error("unknown status `\(.status)`")) as $t
| {{type: $t, subject: ("x12:" + .scac + ":" + .shipment_id), time: .shipped_at, code: .status}}
'''
"#,
        dir = drop_dir.display().to_string().replace('\\', "/"),
        carriers = CARRIERS
            .iter()
            .map(|c| {
                let name = c.partner().name();
                format!(
                    "[sources.{name}]\ntype = \"{name}\"\nsecret = \"plain:{EASYPOST_SECRET}\"\n"
                )
            })
            .collect::<String>()
    )
}

/// Posts `body` to the source named after `format`, signed as that partner signs.
pub(crate) async fn post_signed(
    hub: &TestHub,
    format: &dyn CarrierFormat,
    body: Vec<u8>,
) -> reqwest::Response {
    hub.client
        .post(format!(
            "{}/v1/ingest/{}",
            hub.base,
            format.partner().name()
        ))
        .header(
            format.signature_header(),
            format.sign(&body, EASYPOST_SECRET),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn start(sink: &FakePartner) -> (TestHub, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let mut toml = config_toml(&dir.path().join("hub.db"), &sink.url("hook"), "");
    toml.push_str(&extra_sources(&drop_dir));
    let cfg = waybill::Config::parse(&toml, std::iter::empty()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = TestHub::from_parts(cfg, listener, dir);
    (hub, drop_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edi_214_and_a_3pl_csv_build_one_timeline() {
    let sink = FakePartner::start().await;
    let (hub, drop_dir) = start(&sink).await;
    let edi = std::fs::read(format!("{CONNECTORS}/x12/testdata/214_shipment_status.edi")).unwrap();
    let r = hub
        .client
        .post(format!("{}/v1/ingest/edi", hub.base))
        .bearer_auth("edi-key")
        .body(edi.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["content-type"], "application/edi-x12");
    let ack = r.text().await.unwrap();
    assert!(ack.contains("ST*997*"), "{ack}");
    assert!(ack.contains("AK9*A*"), "{ack}");
    // the same interchange again: a duplicate, acknowledged the same way
    let r = hub
        .client
        .post(format!("{}/v1/ingest/edi", hub.base))
        .bearer_auth("edi-key")
        .body(edi)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), ack);

    // the 3PL's confirmation for the same shipment, through the file drop
    let csv = "shipment_id,scac,status,shipped_at\n\
               SHIP-1001,ABCD,PACKED,2026-03-09T06:00:00Z\n\
               SHIP-1001,ABCD,SHIPPED,2026-03-09T08:00:00-05:00\n\
               SHIP-1001,ABCD,LOST_IN_SPACE,2026-03-09T09:00:00Z\n";
    std::fs::write(drop_dir.join("confirm.tmp"), csv).unwrap();
    std::fs::rename(drop_dir.join("confirm.tmp"), drop_dir.join("confirm.csv")).unwrap();
    let done = drop_dir.join("done/confirm.csv");
    for _ in 0..200 {
        if done.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(done.exists(), "file moved to done/");
    let report = std::fs::read_to_string(drop_dir.join("done/confirm.csv.errors.txt")).unwrap();
    assert!(
        report.starts_with("confirm.csv:4: mapping.runtime:"),
        "{report}"
    );

    let s = hub.get("/v1/shipments/x12:ABCD:SHIP-1001").await;
    assert_eq!(s["state"]["milestone"], "delivered");
    let timeline: Vec<(String, String)> = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event"]["type"].as_str().unwrap().to_owned(),
                t["event"]["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let types: Vec<&str> = timeline.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types[0], "warehouse.packed", "{timeline:?}");
    assert_eq!(
        types.last().copied(),
        Some("shipment.delivered"),
        "{timeline:?}"
    );
    assert_eq!(
        timeline
            .iter()
            .filter(|(_, s)| s == "/sources/threepl")
            .count(),
        2
    );
    assert_eq!(
        timeline.iter().filter(|(_, s)| s == "/sources/edi").count(),
        5
    );
    let times: Vec<&str> = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"]["time"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "timeline ordered by occurrence");
    // EDI through the same drop: imported, moved, answered with a 997 file; a broken
    // interchange goes to failed/ with a rejecting 997 and the reason
    std::fs::copy(
        format!("{CONNECTORS}/x12/testdata/214_custom_separators.edi"),
        drop_dir.join("gw.edi"),
    )
    .unwrap();
    std::fs::copy(
        format!("{CONNECTORS}/x12/testdata/control_number_mismatch.edi"),
        drop_dir.join("bad.x12"),
    )
    .unwrap();
    let (ok_ack, bad_ack) = (
        drop_dir.join("done/gw.edi.997"),
        drop_dir.join("failed/bad.x12.997"),
    );
    for _ in 0..200 {
        if ok_ack.exists() && bad_ack.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // the 997 answers in the interchange's own separators (`|` here)
    let ok = std::fs::read_to_string(&ok_ack).unwrap();
    assert!(ok.contains("AK9|A"), "{ok}");
    assert!(std::fs::read_to_string(&bad_ack).unwrap().contains("AK5*R"));
    let report = std::fs::read_to_string(drop_dir.join("failed/bad.x12.errors.txt")).unwrap();
    assert!(report.contains("x12.control_number_mismatch"), "{report}");
    // the bad CSV line is kept as a rejected inbox record
    let inbox = hub.get("/v1/inbox?status=rejected&source=threepl").await;
    let bodies: Vec<&str> = inbox["inbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies.contains(&"SHIP-1001,ABCD,LOST_IN_SPACE,2026-03-09T09:00:00Z"),
        "{bodies:?}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_partner_input_is_answered_precisely_and_kept() {
    let sink = FakePartner::start().await;
    let (hub, _) = start(&sink).await;
    let bad = std::fs::read(format!("{CONNECTORS}/x12/testdata/bad_segment_count.edi")).unwrap();
    let r = hub
        .client
        .post(format!("{}/v1/ingest/edi", hub.base))
        .bearer_auth("edi-key")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers()["x-waybill-outcome"],
        "x12.segment_count_mismatch"
    );
    let ack = r.text().await.unwrap();
    assert!(
        ack.contains("ST*997*") && ack.contains("AK5*R"),
        "a rejecting 997: {ack}"
    );
    // EasyPost: signed correctly → events; wrong signature → 401, kept
    let body = std::fs::read(format!("{CONNECTORS}/easypost/testdata/delivered.json")).unwrap();
    let r = post_signed(&hub, &waybill_connectors::easypost::EasyPost, body.clone()).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let r = hub
        .client
        .post(format!("{}/v1/ingest/easypost", hub.base))
        .header("x-hmac-signature", "hmac-sha256-hex=00")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let inbox = hub.get("/v1/inbox?status=rejected").await;
    let codes: Vec<&str> = inbox["inbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason_code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"x12.segment_count_mismatch"), "{codes:?}");
    assert_eq!(codes.len(), 2, "{codes:?}");
    // the file drop is not reachable over HTTP
    let r = hub
        .client
        .post(format!("{}/v1/ingest/threepl", hub.base))
        .body("a,b\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_carrier_format_maps_its_samples_and_keeps_malformed_ones() {
    let sink = FakePartner::start().await;
    let (hub, _) = start(&sink).await;
    for format in CARRIERS {
        let partner = format.partner().name();
        let dir = format!("{CONNECTORS}/{partner}/testdata");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.ends_with(".expected.json"))
            .collect();
        names.sort();
        let (mut ok, mut bad) = (0, 0);
        for name in names {
            let body = std::fs::read(format!("{dir}/{name}")).unwrap();
            let r = post_signed(&hub, *format, body).await;
            let status = r.status().as_u16();
            if name.starts_with("malformed") {
                assert!(status == 400 || status == 422, "{partner}/{name}: {status}");
                let p: serde_json::Value = r.json().await.unwrap();
                assert!(
                    p["code"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{partner}.")),
                    "{partner}/{name}: {p}"
                );
                assert!(!p["detail"].as_str().unwrap().is_empty());
                bad += 1;
            } else {
                assert!(
                    status == 202 || status == 200,
                    "{partner}/{name}: {status} {}",
                    r.text().await.unwrap()
                );
                ok += 1;
            }
        }
        let inbox = hub
            .get(&format!("/v1/inbox?status=rejected&source={partner}"))
            .await;
        assert_eq!(
            inbox["inbox"].as_array().unwrap().len(),
            bad,
            "{partner}: every malformed sample kept"
        );
        assert!(ok > 0 && bad > 0, "{partner}: {ok} ok, {bad} malformed");
    }
    hub.stop().await;
}

/// An interchange whose ISA14 asks for a TA1: accepted, the 997 carries TA1 A; with a
/// broken envelope, a TA1 R alone answers (422, over HTTP and beside the dropped file) and
/// the payload is kept; without ISA14 = 1 the envelope failure stays a JSON problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interchange_that_asks_for_a_ta1_gets_one() {
    let sink = FakePartner::start().await;
    let (hub, drop_dir) = start(&sink).await;
    let fixture =
        std::fs::read_to_string(format!("{CONNECTORS}/x12/testdata/bad_segment_count.edi"))
            .unwrap();
    let good = fixture.replace("SE*7*0001", "SE*5*0001");
    let asking = good.replace("*000000906*0*P*", "*000000906*1*P*");
    let broken = asking.replace("IEA*1*000000906", "IEA*1*000000907");
    let post = |body: String| {
        hub.client
            .post(format!("{}/v1/ingest/edi", hub.base))
            .bearer_auth("edi-key")
            .body(body)
            .send()
    };
    let r = post(asking.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let ack = r.text().await.unwrap();
    assert!(
        ack.contains("~\nTA1*000000906*260311*1400*A*000~\nGS*FA*"),
        "{ack}"
    );
    assert!(ack.contains("AK9*A*1*1*1~"), "{ack}");

    // Re-sent: a duplicate, answered with the same control number and TA1.
    let r = post(asking.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let again = r.text().await.unwrap();
    let isa13 = |doc: &str| doc.get(90..99).map(str::to_owned);
    assert_eq!(isa13(&again), isa13(&ack));
    assert!(
        again.contains("~\nTA1*000000906*260311*1400*A*000~\nGS*FA*"),
        "{again}"
    );

    // Only TA1s, no group: a TA1 alone when asked for, else the plain JSON answer.
    let only_ta1 = |isa14: &str| {
        format!(
            "ISA*00*          *00*          *02*ABCD           *ZZ*WAYBILLHUB     *260311*1400*U*00401*000000911*{isa14}*P*>~\nTA1*000000123*260310*0900*A*000~\nIEA*0*000000911~\n"
        )
    };
    let r = post(only_ta1("1")).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["content-type"], "application/edi-x12");
    let alone = r.text().await.unwrap();
    assert!(
        alone.contains("~\nTA1*000000911*260311*1400*A*000~\nIEA*0*"),
        "{alone}"
    );
    let r = post(only_ta1("0").replace("000000911", "000000912"))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["content-type"], "application/json");

    let r = post(broken.clone()).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/edi-x12");
    assert_eq!(
        r.headers()["x-waybill-outcome"],
        "x12.control_number_mismatch"
    );
    let ta1 = r.text().await.unwrap();
    assert!(
        ta1.contains("~\nTA1*000000906*260311*1400*R*001~\nIEA*0*"),
        "{ta1}"
    );
    assert!(!ta1.contains("GS*"), "a TA1 alone: {ta1}");

    let r = post(broken.replace("*000000906*1*P*", "*000000906*0*P*"))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    let inbox = hub.get("/v1/inbox?status=rejected&source=edi").await;
    let kept = inbox["inbox"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{inbox}");

    // Through the file drop: the TA1 is written beside the failed file as `.ta1`.
    std::fs::write(drop_dir.join("env.tmp"), &broken).unwrap();
    std::fs::rename(drop_dir.join("env.tmp"), drop_dir.join("env.edi")).unwrap();
    let written = drop_dir.join("failed/env.edi.ta1");
    for _ in 0..200 {
        if written.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let doc = std::fs::read_to_string(&written).unwrap();
    assert!(doc.contains("TA1*000000906*260311*1400*R*001~"), "{doc}");
    assert!(!drop_dir.join("failed/env.edi.997").exists());
    hub.stop().await;
}
