//! The runtime with its real runner, durable timers and a store, on both stores, with
//! the wall clock moved by hand (`ManualClock`): exception-to-case opens, updates,
//! escalates once, closes and reopens; delivery-to-invoice asks for missing documents
//! when its wait is over.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::clock::ManualClock;
use crate::workflow::delivery_to_invoice::{DeliveryToInvoice, Gates};
use crate::workflow::exception_to_case::{CaseRules, ExceptionToCase};
use crate::workflow::ports::{Invoice, OrderContext, PortFuture};
use crate::Metrics;
use std::collections::HashMap;
use waybill_model::ShipmentKey;

/// An ERP that records the activities it was asked for; the first `fail_first` activity
/// calls fail as if Odoo were down.
#[derive(Default)]
struct RecordingErp {
    activities: Mutex<Vec<String>>,
    fail_first: std::sync::atomic::AtomicUsize,
}

impl Erp for RecordingErp {
    fn order_context(&self, picking_id: i64) -> PortFuture<'_, OrderContext> {
        Box::pin(async move {
            Ok(OrderContext {
                picking_id,
                state: "done".into(),
                order_amount: Some("100.00".into()),
                ..OrderContext::default()
            })
        })
    }
    fn record_booking<'a>(&'a self, _: i64, _: &'a Booked, _: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn invoice<'a>(&'a self, _: i64, _: &'a str) -> PortFuture<'a, Invoice> {
        Box::pin(async { Ok(Invoice::default()) })
    }
    fn record_void<'a>(
        &'a self,
        _: i64,
        _: &'a Booked,
        _: &'a str,
        _: &'a str,
    ) -> PortFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn close_activity<'a>(&'a self, _: i64, _: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn note<'a>(&'a self, _: i64, _: &'a str, _: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn activity<'a>(
        &'a self,
        _: i64,
        marker: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let left = self.fail_first.load(std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                self.fail_first
                    .store(left - 1, std::sync::atomic::Ordering::SeqCst);
                return Err(crate::workflow::ports::PortError::new(
                    waybill_model::FailureKind::Retryable,
                    "odoo.http_error",
                    "503",
                ));
            }
            self.activities.lock().unwrap().push(marker.to_owned());
            Ok(())
        })
    }
}

const ENTITY: &str = "odoo:db:picking:7";

fn event(id: &str, ty: &str, data: Value) -> Value {
    json!({"id": id, "type": ty, "source": "/sources/carrier", "subject": ENTITY,
           "time": "2026-12-01T10:00:00Z", "data": data})
}

struct Rig {
    rt: Arc<Runtime>,
    clock: ManualClock,
    erp: Arc<RecordingErp>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn rig(store: Store) -> Rig {
    rig_with(store, StepPolicy::default().retry)
}

fn rig_with(store: Store, retry: crate::retry::RetryPolicy) -> Rig {
    let hub = Arc::new(Hub::new(
        store,
        HashMap::new(),
        Arc::new(Metrics::default()),
    ));
    let clock = ManualClock::starting_at(time::macros::datetime!(2026-12-01 10:00 UTC));
    let erp = Arc::new(RecordingErp::default());
    let policy = StepPolicy {
        tick: Duration::from_millis(20),
        retry,
        ..StepPolicy::default()
    };
    let rt = Arc::new(Runtime::new(
        hub,
        vec![
            Arc::new(ExceptionToCase::new(
                serde_json::from_value::<CaseRules>(json!({"sla": "24h"})).unwrap(),
            )),
            Arc::new(DeliveryToInvoice::new(
                serde_json::from_value::<Gates>(json!({"documents_wait": "48h"})).unwrap(),
            )),
        ],
        None,
        Some(erp.clone() as Arc<dyn Erp>),
        Arc::new(clock.clone()),
        policy,
    ));
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(rt.clone().run(rx));
    Rig {
        rt,
        clock,
        erp,
        stop,
        task,
    }
}

impl Rig {
    /// The case events appended so far, in order.
    async fn case_events(&self) -> Vec<String> {
        let Some(view) = self
            .rt
            .store()
            .shipment(&ShipmentKey(ENTITY.into()))
            .await
            .unwrap()
        else {
            return Vec::new();
        };
        view.timeline
            .iter()
            .map(|t| t.event.ty.as_str().to_owned())
            .filter(|t| t.starts_with("case."))
            .collect()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..500 {
            let got = self.case_events().await;
            if pred(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: {:?}", self.case_events().await);
    }

    async fn offer(&self, ev: Value) {
        self.rt.offer_event(&ev).await.unwrap();
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

async fn a_case_opens_updates_escalates_once_closes_and_reopens(store: Store) {
    let r = rig(store);
    let picking = json!({"refs": {"odoo.picking_id": "7"}});
    r.offer(event(
        "e1",
        "shipment.delivery_attempted",
        json!({"reason": "recipient_unavailable", "refs": {"odoo.picking_id": "7"}}),
    ))
    .await;
    r.wait_for("opened", |e| e == ["case.opened"]).await;
    r.offer(event("e2", "shipment.exception", picking.clone()))
        .await;
    r.wait_for("updated", |e| e.len() == 2).await;
    // 23 h: not yet; 25 h: escalated, once, however long it stays open.
    r.clock.advance(Duration::from_secs(23 * 3600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.case_events().await.len(),
        2,
        "not escalated before the SLA"
    );
    r.clock.advance(Duration::from_secs(2 * 3600));
    r.wait_for("escalated", |e| e.contains(&"case.escalated".to_owned()))
        .await;
    r.clock.advance(Duration::from_secs(72 * 3600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    r.offer(event("e3", "shipment.delivered", json!({}))).await;
    let got = r
        .wait_for("closed", |e| e.contains(&"case.closed".to_owned()))
        .await;
    assert_eq!(
        got,
        [
            "case.opened",
            "case.updated",
            "case.escalated",
            "case.closed"
        ]
    );
    // A new problem reopens it; its own SLA escalates it again.
    r.offer(event(
        "e4",
        "shipment.exception",
        json!({"reason": "damaged"}),
    ))
    .await;
    r.wait_for("reopened", |e| e.len() == 5).await;
    r.clock.advance(Duration::from_secs(25 * 3600));
    let got = r.wait_for("escalated again", |e| e.len() == 6).await;
    assert_eq!(&got[4..], ["case.opened", "case.escalated"]);
    let acts = r.erp.activities.lock().unwrap().clone();
    assert_eq!(
        acts,
        [
            format!("[waybill case:{ENTITY}#1]"),
            format!("[waybill case:{ENTITY}#1 escalated]"),
            format!("[waybill case:{ENTITY}#2]"),
            format!("[waybill case:{ENTITY}#2 escalated]"),
        ]
    );
    let (wf, _, timers) =
        r.rt.store()
            .workflow(&format!("exception_to_case:{ENTITY}"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(wf.stage, "open");
    assert!(
        timers.is_empty(),
        "the SLA timer fired and is gone: {timers:?}"
    );
    let reopened: Value = serde_json::from_str(&wf.state).unwrap();
    assert_eq!(reopened["opening"], 2);
    r.stop().await;
}

async fn missing_documents_open_a_task_when_the_wait_is_over(store: Store) {
    let r = rig(store);
    r.offer(event(
        "d1",
        "shipment.delivered",
        json!({"refs": {"odoo.picking_id": "7"}}),
    ))
    .await;
    let id = format!("delivery_to_invoice:{ENTITY}");
    for _ in 0..500 {
        let (wf, _) = r.rt.store().wf_load(&id).await.unwrap().unwrap();
        if wf.stage == "waiting_documents" && wf.status == "waiting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, timers) = r.rt.store().workflow(&id).await.unwrap().unwrap();
    assert_eq!(timers.len(), 1, "the documents timer is set: {timers:?}");
    r.clock.advance(Duration::from_secs(49 * 3600));
    let mut tasks = Vec::new();
    for _ in 0..500 {
        tasks =
            r.rt.store()
                .tasks(waybill_store::flow::TaskQuery {
                    workflow: Some(id.clone()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
        if !tasks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].kind, "documents_missing");
    // The proof comes: the question is withdrawn, and subscribers hear it.
    r.offer(event("d2", "pod.captured", json!({}))).await;
    let mut heard = Vec::new();
    for _ in 0..500 {
        if let Some(v) =
            r.rt.store()
                .shipment(&ShipmentKey(ENTITY.into()))
                .await
                .unwrap()
        {
            heard = v
                .timeline
                .iter()
                .filter(|t| t.event.ty.as_str() == "task.resolved")
                .map(|t| t.event.data.clone())
                .collect();
            if !heard.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(heard.len(), 1, "one task.resolved for the withdrawn task");
    assert_eq!(heard[0]["outcome"], "cancelled");
    assert_eq!(heard[0]["kind"], "documents_missing");
    r.stop().await;
}

/// A call waiting an hour for its retry runs at once on an operator's `retry`.
async fn an_operators_retry_runs_a_waiting_call_now(store: Store) {
    let mut retry = StepPolicy::default().retry;
    retry.schedule = vec![Duration::from_secs(3600); 3];
    retry.jitter = crate::retry::Jitter::None;
    let r = rig_with(store, retry);
    r.erp
        .fail_first
        .store(1, std::sync::atomic::Ordering::SeqCst);
    r.offer(event(
        "r1",
        "shipment.exception",
        json!({"refs": {"odoo.picking_id": "7"}}),
    ))
    .await;
    let id = format!("exception_to_case:{ENTITY}");
    let mut waiting = false;
    for _ in 0..500 {
        if let Some((wf, _)) = r.rt.store().wf_load(&id).await.unwrap() {
            if wf
                .retry_at
                .is_some_and(|t| t > r.clock.now_ms() + 3_000_000)
            {
                waiting = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "the failed activity waits an hour");
    assert!(r.erp.activities.lock().unwrap().is_empty());
    assert!(r.rt.command(&id, "retry", "ops").await.unwrap());
    for _ in 0..500 {
        if !r.erp.activities.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        r.erp.activities.lock().unwrap().len(),
        1,
        "made at once, not in an hour"
    );
    r.stop().await;
}

mod sqlite {
    use super::*;
    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open_sqlite(waybill_store::SqliteOptions::new(dir.path().join("t.db")))
            .await
            .unwrap()
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_case_opens_updates_escalates_once_closes_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        super::a_case_opens_updates_escalates_once_closes_and_reopens(store(&dir).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_documents_open_a_task_when_the_wait_is_over() {
        let dir = tempfile::tempdir().unwrap();
        super::missing_documents_open_a_task_when_the_wait_is_over(store(&dir).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operators_retry_runs_a_waiting_call_now() {
        let dir = tempfile::tempdir().unwrap();
        super::an_operators_retry_runs_a_waiting_call_now(store(&dir).await).await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_case_opens_updates_escalates_once_closes_and_reopens() {
        let (opts, _guard) = waybill_testkit::pg::fresh("wfcase");
        let store = Store::open_postgres(opts).await.unwrap();
        super::a_case_opens_updates_escalates_once_closes_and_reopens(store).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operators_retry_runs_a_waiting_call_now() {
        let (opts, _guard) = waybill_testkit::pg::fresh("wfretry");
        let store = Store::open_postgres(opts).await.unwrap();
        super::an_operators_retry_runs_a_waiting_call_now(store).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_documents_open_a_task_when_the_wait_is_over() {
        let (opts, _guard) = waybill_testkit::pg::fresh("wfdocs");
        let store = Store::open_postgres(opts).await.unwrap();
        super::missing_documents_open_a_task_when_the_wait_is_over(store).await;
    }
}
