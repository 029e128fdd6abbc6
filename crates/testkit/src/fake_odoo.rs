//! A protocol-faithful fake Odoo: JSON-RPC (`/jsonrpc`) and JSON-2 (`/json/2/...`) with
//! the request and answer shapes recorded from a real Odoo 18 in
//! ../shared/design/ODOO.md §3 — errors with HTTP 200 and `error.data.name`, no `result`
//! key for a method returning None, `false` for empty fields, many2one as `[id, name]`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The API key the fake accepts.
pub const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

/// State of the fake.
#[derive(Default)]
pub struct Fake {
    /// Major version it reports.
    pub major: i64,
    in_flight: AtomicUsize,
    /// Most requests seen in flight at once.
    pub max_in_flight: AtomicUsize,
    /// When set, `stock.picking` / `sale.order` `search_read` serve these records,
    /// filtered on `write_date >=` the domain's first term, ordered and paged like Odoo.
    pub records: std::sync::Mutex<Option<Vec<Value>>>,
    /// Requests answered (both protocols).
    pub requests: AtomicUsize,
    /// Every ORM call made while `records` is set: (model, method, context).
    pub calls: std::sync::Mutex<Vec<(String, String, Value)>>,
    /// Answer time of every request (default 20 ms when zero).
    pub latency_ms: std::sync::atomic::AtomicU64,
}

fn serve_records(all: &[Value], model: &str, kw: &Value) -> Value {
    let since = kw["domain"][0][2].as_str().unwrap_or("").to_owned();
    let mut rows: Vec<&Value> = all
        .iter()
        .filter(|r| {
            r["_model"] == model && r["write_date"].as_str().unwrap_or("") >= since.as_str()
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r["write_date"].as_str().unwrap_or("").to_owned(),
            r["id"].as_i64(),
        )
    });
    let offset = kw["offset"].as_u64().unwrap_or(0) as usize;
    let limit = kw["limit"].as_u64().unwrap_or(80) as usize;
    Value::Array(rows.into_iter().skip(offset).take(limit).cloned().collect())
}

fn error(name: &str, message: &str) -> Value {
    json!({"code": 200, "message": "Odoo Server Error",
           "data": {"name": name, "message": message, "arguments": [message], "context": {}, "debug": "Traceback (most recent call last): ..."}})
}

/// What the fake answers for `model.method(ids, kwargs)`: Ok(Some(v)) → result, Ok(None) →
/// no result key, Err(e) → error object.
fn object(model: &str, method: &str, kwargs: &Value) -> Result<Option<Value>, Value> {
    match (model, method) {
        ("stock.picking", "search_read") => {
            assert!(kwargs["fields"].is_array(), "explicit field list");
            Ok(Some(json!([
                {"id": 20, "name": "WH/OUT/00015", "state": "assigned", "carrier_id": [1, "Standard delivery"],
                 "carrier_tracking_ref": false, "write_date": "2026-11-23 07:09:02"}
            ])))
        }
        ("stock.picking", "write") => Ok(Some(json!(true))),
        ("stock.quant", "action_apply_inventory") => Ok(None),
        ("stock.picking", "button_validate") => Err(error(
            "odoo.exceptions.UserError",
            "You cannot validate a transfer if no quantities are reserved.",
        )),
        ("res.partner", "write") => Err(error(
            "psycopg2.errors.SerializationFailure",
            "could not serialize access due to concurrent update",
        )),
        ("res.company", "write") => Err(error(
            "odoo.exceptions.LockError",
            "Cannot acquire a lock on the record, another transaction holds it",
        )),
        ("stock.picking", "_action_done") => Err(error(
            "odoo.exceptions.AccessError",
            "Private methods (such as 'stock.picking._action_done') cannot be called remotely.",
        )),
        (m, _) => Err(error(
            "odoo.exceptions.UserError",
            &format!("Object {m} doesn't exist"),
        )),
    }
}

async fn answer_time(f: &Fake) {
    f.requests.fetch_add(1, Ordering::SeqCst);
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    f.max_in_flight.fetch_max(n, Ordering::SeqCst);
    let ms = match f.latency_ms.load(Ordering::Relaxed) {
        0 => 20,
        ms => ms,
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    f.in_flight.fetch_sub(1, Ordering::SeqCst);
}

fn run_orm(
    f: &Fake,
    model: &str,
    method: &str,
    pos: &Value,
    kw: &Value,
) -> Result<Option<Value>, Value> {
    f.calls
        .lock()
        .unwrap()
        .push((model.to_owned(), method.to_owned(), kw["context"].clone()));
    let mut guard = f.records.lock().unwrap();
    let all = guard.get_or_insert_with(Vec::new);
    orm(all, model, method, pos, kw)
}

async fn jsonrpc(State(f): State<Arc<Fake>>, Json(body): Json<Value>) -> Json<Value> {
    answer_time(&f).await;
    let id = body["id"].clone();
    let p = &body["params"];
    let args = &p["args"];
    let out = match (p["service"].as_str(), p["method"].as_str()) {
        (Some("common"), Some("version")) => {
            Ok(Some(json!({"server_version": format!("{}.0", f.major),
            "server_version_info": [f.major, 0, 0, "final", 0, ""], "server_serie": format!("{}.0", f.major), "protocol_version": 1})))
        }
        (Some("common"), Some("authenticate")) => Ok(Some(if args[2] == KEY {
            json!(2)
        } else {
            json!(false)
        })),
        (Some("object"), Some("execute_kw")) => {
            let has_records = f.records.lock().unwrap().is_some();
            if args[2] != KEY {
                Err(error("odoo.exceptions.AccessDenied", "Access Denied"))
            } else if has_records {
                run_orm(
                    &f,
                    args[3].as_str().unwrap_or(""),
                    args[4].as_str().unwrap_or(""),
                    &args[5],
                    &args[6],
                )
            } else {
                object(
                    args[3].as_str().unwrap_or(""),
                    args[4].as_str().unwrap_or(""),
                    &args[6],
                )
            }
        }
        _ => Err(error("builtins.KeyError", "unknown service")),
    };
    Json(match out {
        Ok(Some(r)) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Ok(None) => json!({"jsonrpc": "2.0", "id": id}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e}),
    })
}

async fn json2(
    State(f): State<Arc<Fake>>,
    Path((model, method)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    answer_time(&f).await;
    // Shapes and statuses as a real Odoo 19 answered (recorded): the error object is the
    // whole body, the status follows the exception class.
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("bearer {KEY}")) {
        let mut e = error("werkzeug.exceptions.Unauthorized", "Invalid apikey")["data"].clone();
        e["arguments"] = json!(["Invalid apikey", 401]);
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            Json(e),
        )
            .into_response();
    }
    if h.get("x-odoo-database").and_then(|v| v.to_str().ok()) != Some("logistics") {
        // An unknown or missing database: an HTML page, not JSON.
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html; charset=utf-8")],
            "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>No database is selected.</p>",
        )
            .into_response();
    }
    let has_records = f.records.lock().unwrap().is_some();
    let out = if has_records {
        // JSON-2 takes keyword arguments only: `ids` for the records, `vals_list` for
        // `create`; the ORM here reads them as JSON-RPC's positional arguments.
        let pos = if method == "create" {
            json!([body["vals_list"].clone()])
        } else {
            json!([body["ids"].clone()])
        };
        run_orm(&f, &model, &method, &pos, &body)
    } else {
        object(&model, &method, &body)
    };
    match out {
        Ok(v) => (StatusCode::OK, Json(v.unwrap_or(Value::Null))).into_response(),
        Err(e) => {
            let name = e["data"]["name"].as_str().unwrap_or("");
            let status = match name.rsplit('.').next().unwrap_or("") {
                "UserError" | "ValidationError" => StatusCode::UNPROCESSABLE_ENTITY,
                "AccessError" | "AccessDenied" => StatusCode::FORBIDDEN,
                "MissingError" => StatusCode::NOT_FOUND,
                "LockError" => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(e["data"].clone())).into_response()
        }
    }
}

/// Starts the fake on 127.0.0.1:0; returns its base URL and state.
pub async fn start(major: i64) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        major,
        ..Default::default()
    });
    let app = Router::new()
        .route("/jsonrpc", post(jsonrpc))
        .route("/json/2/{model}/{method}", post(json2))
        .route("/bad/jsonrpc", post(|| async { StatusCode::BAD_GATEWAY }))
        .with_state(fake.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}"), fake)
}

/// A `stock.picking` record as `search_read` returns it (`_model` marks the fake's table).
pub fn picking(id: i64, state: &str, write_date: &str) -> Value {
    json!({"_model": "stock.picking", "id": id, "name": format!("WH/OUT/{id:05}"), "state": state,
           "origin": "S00025 - EXT-1", "sale_id": [25, "S00025"], "partner_id": [46, "ACME"],
           "carrier_id": [1, "Standard delivery"], "carrier_tracking_ref": false,
           "company_id": [1, "YourCompany"], "picking_type_code": "outgoing",
           "scheduled_date": write_date, "date_done": false, "write_date": write_date})
}

fn matches(rec: &Value, domain: &Value) -> bool {
    domain.as_array().into_iter().flatten().all(|term| {
        let (f, op, v) = (
            term[0].as_str().unwrap_or(""),
            term[1].as_str().unwrap_or(""),
            &term[2],
        );
        // A many2one's name through a dotted path (`sale_id.name`).
        let got = match f.strip_suffix(".name") {
            Some(base) => rec[base].get(1).unwrap_or(&Value::Null),
            None => &rec[f],
        };
        let as_cmp = |x: &Value| {
            x.as_str()
                .map(str::to_owned)
                .or_else(|| x.as_i64().map(|n| format!("{n:020}")))
        };
        match op {
            "=" => got == v || got.get(0) == Some(v),
            "!=" => got != v,
            ">=" => as_cmp(got) >= as_cmp(v),
            "in" => v
                .as_array()
                .is_some_and(|a| a.contains(got) || got.get(0).is_some_and(|g| a.contains(g))),
            "not in" => !v.as_array().is_some_and(|a| a.contains(got)),
            "ilike" => got
                .as_str()
                .zip(v.as_str())
                .is_some_and(|(g, n)| g.to_lowercase().contains(&n.to_lowercase())),
            _ => false,
        }
    })
}

/// A tiny in-memory ORM over `records` (each tagged with `_model`): enough of Odoo's
/// behaviour for the connector's calls, with Odoo's answer shapes.
fn orm(
    all: &mut Vec<Value>,
    model: &str,
    method: &str,
    pos: &Value,
    kw: &Value,
) -> Result<Option<Value>, Value> {
    let ids: Vec<i64> = pos[0]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let next_id = |all: &Vec<Value>| {
        all.iter()
            .filter_map(|r| r["id"].as_i64())
            .max()
            .unwrap_or(0)
            + 1
    };
    match method {
        // The XML id of the Note subtype, as in a fresh Odoo (mail.mt_note is id 2).
        "search_read" if model == "ir.model.data" => Ok(Some(
            if matches(&json!({"module": "mail", "name": "mt_note"}), &kw["domain"]) {
                json!([{"id": 11964, "res_id": 2}])
            } else {
                json!([])
            },
        )),
        "search_read" => Ok(Some(serve_records_domain(all, model, kw))),
        "search_count" => Ok(Some(json!(all
            .iter()
            .filter(|r| r["_model"] == model && matches(r, &kw["domain"]))
            .count()))),
        "write" => {
            for r in all
                .iter_mut()
                .filter(|r| r["_model"] == model && ids.contains(&r["id"].as_i64().unwrap_or(-1)))
            {
                if let (Some(o), Some(vals)) = (r.as_object_mut(), kw["vals"].as_object()) {
                    for (k, v) in vals {
                        o.insert(k.clone(), v.clone());
                    }
                }
            }
            Ok(Some(json!(true)))
        }
        "button_validate" => {
            let mut wizard = None;
            for r in all
                .iter_mut()
                .filter(|r| r["_model"] == model && ids.contains(&r["id"].as_i64().unwrap_or(-1)))
            {
                if r["state"] == "done" {
                    return Err(error(
                        "odoo.exceptions.UserError",
                        "You cannot validate a transfer if no quantities are reserved.",
                    ));
                }
                if r["_partial"] == json!(true) {
                    wizard = Some(
                        json!({"name": "Create Backorder?", "type": "ir.actions.act_window",
                        "res_model": "stock.backorder.confirmation", "target": "new", "views": [[898, "form"]],
                        "context": {"button_validate_picking_ids": ids, "default_show_transfers": false,
                                    "default_pick_ids": ids.iter().map(|i| json!([4, i])).collect::<Vec<_>>()}}),
                    );
                } else {
                    r["state"] = json!("done");
                }
            }
            Ok(Some(wizard.unwrap_or(json!(true))))
        }
        // Odoo's call_kw for `create` reads args[0]: values passed as keywords fail so.
        "create" if pos.as_array().is_none_or(|a| a.is_empty()) => {
            Err(error("builtins.IndexError", "tuple index out of range"))
        }
        "create" if model == "stock.backorder.confirmation" => Ok(Some(json!([1]))),
        "create" if model == "mail.message" => {
            let mut ids = Vec::new();
            for v in pos[0].as_array().cloned().unwrap_or_default() {
                let id = next_id(all);
                let mut rec = v.clone();
                rec["_model"] = json!("mail.message");
                rec["id"] = json!(id);
                all.push(rec);
                ids.push(id);
            }
            Ok(Some(json!(ids)))
        }
        "process" | "process_cancel_backorder" if model == "stock.backorder.confirmation" => {
            // Without the action's context the wizard validates nothing (as in Odoo).
            let targets: Vec<i64> = kw["context"]["button_validate_picking_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let mut backorders = Vec::new();
            for r in all.iter_mut().filter(|r| {
                r["_model"] == "stock.picking" && targets.contains(&r["id"].as_i64().unwrap_or(-1))
            }) {
                r["state"] = json!("done");
                if method == "process" {
                    backorders.push(r["id"].as_i64().unwrap_or(0));
                }
            }
            for b in backorders {
                let id = next_id(all);
                all.push(json!({"_model": "stock.picking", "id": id, "state": "assigned", "backorder_id": [b, "backorder"],
                                "picking_type_code": "outgoing", "carrier_tracking_ref": false, "write_date": "2026-11-23 08:00:00"}));
            }
            Ok(Some(json!(true)))
        }
        "create" if model == "sale.advance.payment.inv" => {
            let id = next_id(all);
            let so = pos[0][0]["sale_order_ids"][0][2][0].clone();
            all.push(json!({"_model": model, "id": id, "order": so}));
            Ok(Some(json!([id])))
        }
        "create_invoices" => {
            let wiz = all
                .iter()
                .find(|r| r["_model"] == model && ids.contains(&r["id"].as_i64().unwrap_or(-1)))
                .cloned();
            let so = wiz.map(|w| w["order"].clone()).unwrap_or(Value::Null);
            let inv = next_id(all);
            all.push(json!({"_model": "account.move", "id": inv, "state": "draft", "name": "/", "move_type": "out_invoice"}));
            for r in all
                .iter_mut()
                .filter(|r| r["_model"] == "sale.order" && r["id"] == so)
            {
                if let Some(a) = r["invoice_ids"].as_array_mut() {
                    a.push(json!(inv));
                }
                r["invoice_status"] = json!("invoiced");
            }
            Ok(Some(
                json!({"type": "ir.actions.act_window", "res_model": "account.move", "res_id": inv}),
            ))
        }
        "action_post" if model == "account.move" => {
            for r in all
                .iter_mut()
                .filter(|r| r["_model"] == model && ids.contains(&r["id"].as_i64().unwrap_or(-1)))
            {
                r["state"] = json!("posted");
                r["name"] = json!(format!("INV/2026/{:05}", r["id"].as_i64().unwrap_or(0)));
            }
            Ok(Some(json!(false)))
        }
        "message_post" => {
            let id = next_id(all);
            let body = kw["body"].as_str().unwrap_or("");
            // A str body is escaped; `body_is_html` keeps it as (sanitised) HTML.
            let stored = if kw["body_is_html"] == json!(true) {
                body.to_owned()
            } else {
                let escaped = body
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                format!("<p>{escaped}</p>")
            };
            all.push(
                json!({"_model": "mail.message", "id": id, "model": model, "res_id": ids.first(),
                            "body": stored, "message_type": kw["message_type"]}),
            );
            Ok(Some(json!(id)))
        }
        "activity_schedule" => {
            let id = next_id(all);
            all.push(json!({"_model": "mail.activity", "id": id, "res_model": model, "res_id": ids.first(),
                            "summary": kw["summary"], "note": kw["note"], "user_id": kw["user_id"]}));
            Ok(Some(json!(format!("mail.activity({id},)"))))
        }
        _ => Err(error(
            "odoo.exceptions.UserError",
            &format!("fake Odoo has no {model}.{method}"),
        )),
    }
}

fn serve_records_domain(all: &[Value], model: &str, kw: &Value) -> Value {
    let domain = &kw["domain"];
    if domain[0][0] == "write_date" {
        return serve_records(all, model, kw);
    }
    let rows: Vec<Value> = all
        .iter()
        .filter(|r| r["_model"] == model && matches(r, domain))
        .cloned()
        .collect();
    // Odoo: a limit of 0 (or none) reads every match.
    let limit = match kw["limit"].as_u64() {
        Some(0) | None => usize::MAX,
        Some(n) => n as usize,
    };
    Value::Array(rows.into_iter().take(limit).collect())
}

/// The records of one model, for assertions.
pub fn records_of(fake: &Fake, model: &str) -> Vec<Value> {
    fake.records
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|r| r["_model"] == model)
        .cloned()
        .collect()
}

/// The `[connection]` table of an Odoo source or sink pointed at this fake (4 requests in
/// flight, no rate limit), for tests and benches that build their config from TOML.
pub fn connection_toml(url: &str, protocol: &str) -> String {
    format!(
        r#"[connection]
url = "{url}"
database = "logistics"
login = "middleware"
api_key = "plain:{KEY}"
protocol = "{protocol}"
max_concurrency = 4
max_requests_per_second = 0
"#
    )
}
