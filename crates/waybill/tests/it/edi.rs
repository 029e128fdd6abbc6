//! X12 as carriers and warehouses really send it: histories re-sent in new interchanges,
//! the same interchange over HTTP and as a dropped file, partial ship notices.

use crate::partners::{start, CONNECTORS};
use crate::*;
use std::collections::BTreeMap;
use waybill_testkit::FakePartner;

/// The interchange with new control numbers (ISA13/IEA02, GS06/GE02, ST02/SE02), as a
/// carrier re-sending the same statuses in a later transmission would.
fn resent(edi: &str, n: u32) -> String {
    edi.replace("000000905", &format!("{:09}", 905 + n))
        .replace("*905*X*", &format!("*{}*X*", 905 + n))
        .replace("GE*2*905", &format!("GE*2*{}", 905 + n))
        .replace("*0001~", &format!("*{:04}~", 100 + n))
}

async fn post_edi(hub: &TestHub, body: String) -> (u16, String) {
    let r = hub
        .client
        .post(format!("{}/v1/ingest/edi", hub.base))
        .bearer_auth("edi-key")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn timeline_ids(s: &serde_json::Value) -> Vec<String> {
    s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_214_resent_in_a_new_interchange_or_dropped_as_a_file_adds_nothing() {
    let sink = FakePartner::start().await;
    let (hub, drop_dir) = start(&sink).await;
    let edi = std::fs::read_to_string(format!("{CONNECTORS}/x12/testdata/214_shipment_status.edi"))
        .unwrap();
    let (status, ack) = post_edi(&hub, edi.clone()).await;
    assert_eq!(status, 202, "{ack}");
    let first = hub.get("/v1/shipments/x12:ABCD:SHIP-1001").await;
    let ids = timeline_ids(&first);
    assert_eq!(ids.len(), 5, "{first}");

    // the carrier re-sends the same statuses in a new interchange
    let again = resent(&edi, 1);
    assert_ne!(again, edi);
    let (status, ack) = post_edi(&hub, again).await;
    assert_eq!(status, 202, "a new interchange is a new payload: {ack}");
    assert!(ack.contains("AK9*A*"), "{ack}");
    assert_eq!(
        timeline_ids(&hub.get("/v1/shipments/x12:ABCD:SHIP-1001").await),
        ids
    );

    // and the gateway drops a third copy into the file drop
    std::fs::write(drop_dir.join("resent.tmp"), resent(&edi, 2)).unwrap();
    std::fs::rename(drop_dir.join("resent.tmp"), drop_dir.join("resent.edi")).unwrap();
    let ack_file = drop_dir.join("done/resent.edi.997");
    for _ in 0..400 {
        if ack_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ack_file.exists(), "the dropped copy is processed");
    assert_eq!(
        timeline_ids(&hub.get("/v1/shipments/x12:ABCD:SHIP-1001").await),
        ids
    );

    // every status reached the sink once (both shipments of the interchange)
    let expected = 5 + 4;
    sink.wait_until(WAIT, "the statuses delivered", |rs| rs.len() >= expected)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in sink.accepted() {
        *seen
            .entry(r.json()["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), expected, "{seen:?}");
    assert!(seen.values().all(|&c| c == 1), "{seen:?}");
    hub.stop().await;
}

/// A warehouse ships 6 of the 10 ordered units of one item (UPC and SKU given) in one
/// carton: the notice says so, and the shipment shows it.
const PARTIAL_856: &str = "ISA*00*          *00*          *ZZ*ACMEWMS        *ZZ*WAYBILLHUB     *260309*0650*U*00401*000000301*0*P*>~\
GS*SH*ACMEWMS*WAYBILLHUB*20260309*0650*301*X*004010~\
ST*856*0001~\
BSN*00*SHIP-2001*20260309*0645*0001~\
HL*1**S~\
TD1*CTN25*1****G*12.5*LB~\
TD5**2*ABCD*M*ABCD FREIGHT~\
REF*BM*BOL-66001~\
DTM*011*20260309*0800*ET~\
HL*2*1*O~\
PRF*PO-4500012345***20260301~\
HL*3*2*P~\
MAN*GM*00000614141000000038~\
HL*4*3*I~\
LIN**UP*012345678905*VN*WIDGET-1~\
SN1**6*EA**10*EA~\
CTT*4~\
SE*16*0001~\
GE*1*301~\
IEA*1*000000301~";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_856_shows_6_of_10_in_the_event_and_the_shipment() {
    let sink = FakePartner::start().await;
    let (hub, _) = start(&sink).await;
    let (status, ack) = post_edi(&hub, PARTIAL_856.to_owned()).await;
    assert_eq!(status, 202, "{ack}");
    let s = hub.get("/v1/shipments/x12:ABCD:SHIP-2001").await;
    let packed = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["event"])
        .find(|e| e["type"] == "warehouse.packed")
        .unwrap_or_else(|| panic!("no packed event: {s}"));
    let line = &packed["data"]["lines"][0];
    assert_eq!(line["shipped"], 6, "{packed}");
    assert_eq!(line["ordered"], 10, "{packed}");
    assert_eq!(line["backordered"], 4, "{packed}");
    assert_eq!(line["ids"]["upc"], "012345678905", "{packed}");
    assert_eq!(packed["data"]["partial"], true, "{packed}");
    // packed no later than it left
    let dispatched = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["event"])
        .find(|e| e["type"] == "shipment.dispatched")
        .unwrap_or_else(|| panic!("no dispatched event: {s}"));
    assert!(
        packed["time"].as_str() <= dispatched["time"].as_str(),
        "{packed} {dispatched}"
    );
    // the delivered CloudEvent carries the same lines
    sink.wait_until(WAIT, "the notice delivered", |rs| {
        rs.iter().any(|r| r.json()["type"] == "warehouse.packed")
    })
    .await;
    let delivered = sink
        .accepted()
        .into_iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "warehouse.packed")
        .unwrap();
    assert_eq!(delivered["data"]["lines"][0]["backordered"], 4);
    hub.stop().await;
}
