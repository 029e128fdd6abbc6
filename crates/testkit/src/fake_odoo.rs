//! A protocol-faithful fake Odoo: JSON-RPC (`/jsonrpc`) and JSON-2 (`/json/2/...`) with
//! the request and answer shapes recorded from a real Odoo 18 in
//! ../shared/design/ODOO.md §3 — errors with HTTP 200 and `error.data.name`, no `result`
//! key for a method returning None, `false` for empty fields, many2one as `[id, name]`.
//!
//! Without records it answers a few canned calls (client tests). Once records are seeded
//! ([`seed`], or by setting [`Fake::records`]) a small in-memory ORM serves them:
//! `search_read` and `read` (domains with `|` / `&` / `!`, `order`, `limit`, `offset`,
//! `active_test`; every field asked for and no other, `false` — `[]` for a one2many or
//! many2many, `0` for a number — when the record has none; many2one ids read back with
//! their names; `carrier_tracking_url` and `sale.order.picking_ids` computed), `write`,
//! `create`,
//! `button_validate` and its wizards, invoicing (`sale.advance.payment.inv` →
//! `create_invoices`, refused with Odoo's `UserError` until a picking of the order is
//! `done`; `account.move.action_post`), `message_post` (with the customer
//! e-mail Odoo sends as a `mail.notification`), `activity_schedule`,
//! `mail.activity.action_feedback`, `ir.attachment` records.
//!
//! Like a real Odoo 18 (request/response pairs recorded from one on loopback, 2026-12-05), it refuses
//! a field its model does not have — asked for, searched on or written — with Odoo's
//! `ValueError` (`Invalid field 'x' on model 'stock.picking'`): the fields of each model
//! are in `FIELDS`, a subset of the real model's taken from the Odoo 18 source; add a
//! real one there when a caller needs it. A text body posted to the chatter is stored as
//! Odoo stores it (`&`, `<`, `>` escaped, quotes as they are); a method answering records
//! answers as each protocol does (`message_post`: `125` over JSON-RPC, `[125]` over
//! JSON-2; `activity_schedule`: `"mail.activity(13,)"`, `[13]`); a record that does not
//! exist is Odoo's `MissingError` with its `(Record: …, User: 2)` line.
//!
//! A ready picking for an order-to-ship test: `seed(&fake, order_to_ship(20))` — the
//! company and its warehouse address, customer 46 with a full address, sale order 25
//! and picking 20 in state `assigned` (see [`order_to_ship`]). Look at what was done with
//! [`record`], [`messages_on`], [`attachments_on`], [`activities_on`],
//! [`emailed_partners`], [`invoices_of`]; make Odoo unavailable (and back) with
//! [`Fake::down`].

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
    /// When set, the in-memory ORM serves these records (each tagged with its `_model`;
    /// keys starting with `_` are the fake's own and never read back).
    pub records: std::sync::Mutex<Option<Vec<Value>>>,
    /// Requests answered (both protocols).
    pub requests: AtomicUsize,
    /// Every ORM call made while `records` is set: (model, method, context).
    pub calls: std::sync::Mutex<Vec<(String, String, Value)>>,
    /// Answer time of every request (default 20 ms when zero).
    pub latency_ms: std::sync::atomic::AtomicU64,
    /// While set, every request is answered `503 Service Unavailable` with an HTML page,
    /// as the proxy in front of a stopped Odoo answers (an outage; clear it to recover).
    pub down: std::sync::atomic::AtomicBool,
}

/// The answer of the proxy in front of a stopped Odoo.
fn unavailable() -> axum::response::Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "text/html; charset=utf-8")],
        "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>",
    )
        .into_response()
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
    orm(all, f.major, model, method, pos, kw)
}

/// A method's answer that is a recordset (`message_post`, `activity_schedule`): each
/// protocol answers it its own way ([`over_jsonrpc`], [`over_json2`]). `returns_id`: the
/// method is decorated `@api.returns(model, lambda value: value.id)`.
fn recordset(model: &str, ids: &[i64], returns_id: bool) -> Value {
    json!({"_recordset": model, "_ids": ids, "_returns_id": returns_id})
}

/// A recordset over JSON-RPC: its first id (or `false`) for a method with `@api.returns`,
/// else the recordset's Python repr, `"mail.activity(13,)"` (recorded from Odoo 18).
fn over_jsonrpc(v: Value) -> Value {
    let Some(model) = v.get("_recordset").and_then(Value::as_str) else {
        return v;
    };
    let ids: Vec<i64> = v["_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if v["_returns_id"] == json!(true) {
        return ids.first().map_or(json!(false), |id| json!(id));
    }
    json!(format!("{model}{}", py_tuple(&ids)))
}

/// A recordset over JSON-2: the list of its ids, `[124]` (recorded from Odoo 19).
fn over_json2(v: Value) -> Value {
    match v.get("_recordset") {
        Some(_) => v["_ids"].clone(),
        None => v,
    }
}

/// Python's repr of a tuple of ids: `(13,)`, `(1, 2)`, `()`.
fn py_tuple(ids: &[i64]) -> String {
    let inner: Vec<String> = ids.iter().map(i64::to_string).collect();
    match ids {
        [one] => format!("({one},)"),
        _ => format!("({})", inner.join(", ")),
    }
}

async fn jsonrpc(State(f): State<Arc<Fake>>, Json(body): Json<Value>) -> axum::response::Response {
    answer_time(&f).await;
    if f.down.load(Ordering::SeqCst) {
        return unavailable();
    }
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
        Ok(Some(r)) => json!({"jsonrpc": "2.0", "id": id, "result": over_jsonrpc(r)}),
        Ok(None) => json!({"jsonrpc": "2.0", "id": id}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e}),
    })
    .into_response()
}

async fn json2(
    State(f): State<Arc<Fake>>,
    Path((model, method)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    answer_time(&f).await;
    if f.down.load(Ordering::SeqCst) {
        return unavailable();
    }
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
        Ok(v) => (StatusCode::OK, Json(over_json2(v.unwrap_or(Value::Null)))).into_response(),
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

/// A `sale.order` record as `search_read` returns it; `client_order_ref` is the
/// customer's reference (their purchase order number), `false` when empty. Its
/// `picking_ids` read as the pickings of the fake whose `sale_id` is the order (set
/// `picking_ids` on the record to name others).
pub fn sale_order(id: i64, name: &str, client_order_ref: Option<&str>) -> Value {
    json!({"_model": "sale.order", "id": id, "name": name, "state": "sale",
           "client_order_ref": client_order_ref.map_or(json!(false), |r| json!(r)),
           "company_id": [1, "YourCompany"], "invoice_status": "no", "invoice_ids": [],
           "write_date": "2026-11-23 07:00:00"})
}

/// A storable `product.product` with its internal reference (`default_code`) and barcode.
pub fn product(id: i64, default_code: &str, barcode: Option<&str>) -> Value {
    json!({"_model": "product.product", "id": id, "default_code": default_code,
           "barcode": barcode.map_or(json!(false), |b| json!(b)), "is_storable": true,
           "display_name": format!("[{default_code}] Product {id}")})
}

/// A `stock.move` of a picking as a confirmed sale order leaves it: `demand` units
/// (`product_uom_qty`), all reserved (`quantity`), not picked, `assigned`.
pub fn stock_move(id: i64, picking: i64, product: i64, demand: f64) -> Value {
    json!({"_model": "stock.move", "id": id, "picking_id": [picking, format!("WH/OUT/{picking:05}")],
           "product_id": [product, format!("Product {product}")], "product_uom_qty": demand,
           "quantity": demand, "picked": false, "state": "assigned", "product_uom": [1, "Units"]})
}

/// A `stock.picking` record as `search_read` returns it (`_model` marks the fake's table).
pub fn picking(id: i64, state: &str, write_date: &str) -> Value {
    json!({"_model": "stock.picking", "id": id, "name": format!("WH/OUT/{id:05}"), "state": state,
           "origin": "S00025 - EXT-1", "sale_id": [25, "S00025"], "partner_id": [46, "ACME"],
           "carrier_id": [1, "Standard delivery"], "carrier_tracking_ref": false,
           "company_id": [1, "YourCompany"], "picking_type_code": "outgoing",
           "scheduled_date": write_date, "date_done": false, "write_date": write_date})
}

static FALSE: Value = Value::Bool(false);

/// Whether a record matches a domain in Odoo's prefix notation: leaves `[field, op,
/// value]`, joined by `&` (implicit between consecutive terms), `|` and `!`.
fn matches(rec: &Value, domain: &Value) -> bool {
    let terms = domain.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut stack: Vec<bool> = Vec::new();
    for term in terms.iter().rev() {
        let result = match term.as_str() {
            Some("!") => !stack.pop().unwrap_or(true),
            Some(op @ ("&" | "|")) => {
                let (a, b) = (stack.pop().unwrap_or(true), stack.pop().unwrap_or(true));
                if op == "&" {
                    a && b
                } else {
                    a || b
                }
            }
            _ => leaf_matches(rec, term),
        };
        stack.push(result);
    }
    stack.into_iter().all(|b| b)
}

/// One leaf of a domain, `[field, op, value]`.
fn leaf_matches(rec: &Value, term: &Value) -> bool {
    let (f, op, v) = (
        term[0].as_str().unwrap_or(""),
        term[1].as_str().unwrap_or(""),
        &term[2],
    );
    // A many2one's name through a dotted path (`sale_id.name`). A field the record
    // does not have reads as empty, which Odoo answers `false`.
    let got = match f.strip_suffix(".name") {
        Some(base) => rec[base].get(1).unwrap_or(&Value::Null),
        None => rec.get(f).unwrap_or(&FALSE),
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
}

/// A tiny in-memory ORM over `records` (each tagged with `_model`): enough of Odoo's
/// behaviour for the connector's calls, with Odoo's answer shapes.
/// `major` is the Odoo version the fake plays (the wording of a few errors).
fn orm(
    all: &mut Vec<Value>,
    major: i64,
    model: &str,
    method: &str,
    pos: &Value,
    kw: &Value,
) -> Result<Option<Value>, Value> {
    let ids: Vec<i64> = pos[0]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if matches!(method, "search_read" | "search_count" | "read") {
        check_domain(model, &kw["domain"])?;
        check_fields(model, &kw["fields"], major)?;
    }
    match method {
        // The XML id of the Note subtype, as in a fresh Odoo (mail.mt_note is id 2).
        "search_read" if model == "ir.model.data" => Ok(Some(
            if matches(&json!({"module": "mail", "name": "mt_note"}), &kw["domain"]) {
                json!([{"id": 11964, "res_id": 2}])
            } else {
                json!([])
            },
        )),
        "search_read" => Ok(Some(search_read(all, model, kw))),
        "search_count" => Ok(Some(json!(all
            .iter()
            .filter(|r| r["_model"] == model && matches(r, &kw["domain"]))
            .count()))),
        "write" => {
            // Values by keyword (`vals`) or as the second positional argument.
            let vals = kw["vals"].as_object().or_else(|| pos[1].as_object());
            check_values(model, vals)?;
            the_records(all, model, &ids)?;
            for r in all.iter_mut().filter(|r| is_one_of(r, model, &ids)) {
                if let (Some(o), Some(vals)) = (r.as_object_mut(), vals) {
                    for (k, v) in vals {
                        // Float fields read back as floats (6 is stored and read as 6.0).
                        let v = match v.as_f64() {
                            Some(f) if field_kind(model, k) == Some(Kind::Float) => json!(f),
                            _ => v.clone(),
                        };
                        o.insert(k.clone(), v);
                    }
                }
                // A move's state follows what is reserved (stock.move `_recompute_state`).
                if model == "stock.move" && vals.is_some_and(|v| v.contains_key("quantity")) {
                    let (q, d) = (
                        r["quantity"].as_f64().unwrap_or(0.0),
                        r["product_uom_qty"].as_f64().unwrap_or(0.0),
                    );
                    r["state"] = json!(if q <= 0.0 {
                        "confirmed"
                    } else if q < d {
                        "partially_available"
                    } else {
                        "assigned"
                    });
                }
            }
            Ok(Some(json!(true)))
        }
        // Records that do not exist (any more) are left out, as Odoo's `read` does.
        "read" => Ok(Some(Value::Array(
            ids.iter()
                .filter_map(|id| all.iter().find(|r| is_one_of(r, model, &[*id])))
                .map(|r| only(model, computed(all, r), &kw["fields"]))
                .collect(),
        ))),
        "button_validate" => button_validate(all, &ids, &kw["context"]),
        // Odoo's call_kw for `create` reads args[0]: values passed as keywords fail so.
        "create" if pos.as_array().is_none_or(|a| a.is_empty()) => {
            Err(error("builtins.IndexError", "tuple index out of range"))
        }
        "create" if model == "stock.backorder.confirmation" => Ok(Some(json!([1]))),
        "create" if model == "mail.message" => {
            for v in pos[0].as_array().into_iter().flatten() {
                check_values(model, v.as_object())?;
            }
            let mut ids = Vec::new();
            for v in pos[0].as_array().cloned().unwrap_or_default() {
                let id = next_id(all);
                let mut rec = v.clone();
                rec["_model"] = json!("mail.message");
                rec["id"] = json!(id);
                if let Some(body) = v["body"].as_str() {
                    rec["body"] = json!(sanitized(body));
                }
                all.push(rec);
                ids.push(id);
            }
            Ok(Some(json!(ids)))
        }
        "create" if model == "ir.attachment" => {
            // JSON-2 takes one dict as well as a list of them (recorded from Odoo 19).
            let vals_list = match &pos[0] {
                Value::Object(_) => json!([pos[0].clone()]),
                list => list.clone(),
            };
            for v in vals_list.as_array().into_iter().flatten() {
                check_values(model, v.as_object())?;
            }
            Ok(Some(create_attachments(all, &vals_list)))
        }
        "process" | "process_cancel_backorder" if model == "stock.backorder.confirmation" => {
            // Without the action's context the wizard validates nothing (as in Odoo).
            let mut ctx = kw["context"].clone();
            let targets: Vec<i64> = ctx["button_validate_picking_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            if targets.is_empty() {
                return Ok(Some(json!(true)));
            }
            if let Some(c) = ctx.as_object_mut() {
                c.insert("skip_backorder".into(), json!(true));
                if method == "process_cancel_backorder" {
                    c.insert("picking_ids_not_to_backorder".into(), json!(targets));
                }
            }
            button_validate(all, &targets, &ctx)
        }
        "create" if model == "sale.advance.payment.inv" => {
            let id = next_id(all);
            let so = pos[0][0]["sale_order_ids"][0][2][0].clone();
            all.push(json!({"_model": model, "id": id, "_order": so}));
            Ok(Some(json!([id])))
        }
        "create_invoices" if model == "sale.advance.payment.inv" => create_invoices(all, &ids),
        "action_post" if model == "account.move" => post_moves(all, &ids),
        "message_post" => message_post(all, model, &ids, kw),
        "activity_schedule" => activity_schedule(all, model, &ids, kw),
        "action_feedback" | "action_done" if model == "mail.activity" => {
            activity_done(all, &ids, kw)
        }
        _ => Err(error(
            "odoo.exceptions.UserError",
            &format!("fake Odoo has no {model}.{method}"),
        )),
    }
}

/// A many2one's id, written bare (`25`) or read back (`[25, "S00025"]`).
fn m2o_id(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.get(0).and_then(Value::as_i64))
}

/// What Odoo 18's `sale.order._create_invoices` raises when no line has a quantity to
/// invoice (sale/models/sale_order.py, `_nothing_to_invoice_error_message`).
pub const NOTHING_TO_INVOICE: &str = "Cannot create an invoice. No items are available to invoice.\n\n\
To resolve this issue, please ensure that:\n   \u{2022} The products have been delivered before attempting to invoice them.\n   \
\u{2022} The invoicing policy of the product is configured correctly.\n\n\
If you want to invoice based on ordered quantities instead:\n   \u{2022} For consumable or storable products, open the product, go to the 'General Information' tab and change the 'Invoicing Policy' from 'Delivered Quantities' to 'Ordered Quantities'.\n   \
\u{2022} For services (and other products), change the 'Invoicing Policy' to 'Prepaid/Fixed Price'.\n";

/// Rounded to cents, as Odoo rounds a USD monetary field.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `sale.advance.payment.inv.create_invoices` for "delivered quantities"
/// (`sale.order._create_invoices`), with the order's products invoiced on delivery
/// (`invoice_policy` `delivery`, as in ODOO.md §3 #4). What is invoiceable is the
/// order's outgoing pickings that are `done` and on no invoice yet (a cancelled invoice
/// frees its pickings); with none, Odoo's `UserError` [`NOTHING_TO_INVOICE`]. Otherwise
/// one draft `out_invoice` as `_prepare_invoice` fills it (`name` `/`, `ref` the
/// customer reference, `invoice_origin` the order's name, the invoice address, the
/// order's currency and company) for what is left of the order's `amount_total` /
/// `amount_untaxed` (the fake has no order lines: a partial delivery is invoiced for the
/// rest of the order), Odoo's note on it ("This journal entry has been created from:"),
/// the order's `invoice_ids` and `invoice_status` (`invoiced`, or `no` while a picking is
/// open) updated. Answers the `account.move` form action with the invoice as `res_id`.
fn create_invoices(all: &mut Vec<Value>, wizards: &[i64]) -> Result<Option<Value>, Value> {
    let wiz = all
        .iter()
        .find(|r| is_one_of(r, "sale.advance.payment.inv", wizards))
        .cloned()
        .ok_or_else(|| missing("sale.advance.payment.inv", wizards))?;
    let so_id = m2o_id(&wiz["_order"]).ok_or_else(|| missing("sale.order", &[]))?;
    let order = all
        .iter()
        .find(|r| is_one_of(r, "sale.order", &[so_id]))
        .cloned()
        .ok_or_else(|| missing("sale.order", &[so_id]))?;
    let outgoing = |r: &Value| {
        r["_model"] == "stock.picking"
            && m2o_id(&r["sale_id"]) == Some(so_id)
            && (r["picking_type_code"].is_null() || r["picking_type_code"] == "outgoing")
    };
    let invoices: Vec<&Value> = all
        .iter()
        .filter(|r| r["_model"] == "account.move" && r["state"] != "cancel")
        .filter(|r| {
            order["invoice_ids"]
                .as_array()
                .is_some_and(|a| a.contains(&r["id"]))
        })
        .collect();
    let covered: Vec<i64> = invoices
        .iter()
        .flat_map(|m| m["_picking_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_i64())
        .collect();
    let delivered: Vec<i64> = all
        .iter()
        .filter(|r| outgoing(r) && r["state"] == "done")
        .filter_map(|r| r["id"].as_i64())
        .filter(|id| !covered.contains(id))
        .collect();
    if delivered.is_empty() {
        return Err(error("odoo.exceptions.UserError", NOTHING_TO_INVOICE));
    }
    let invoiced = |field: &str| -> f64 {
        invoices
            .iter()
            .filter_map(|m| m[field].as_f64())
            .sum::<f64>()
    };
    let total = cents(order["amount_total"].as_f64().unwrap_or(0.0) - invoiced("amount_total"));
    let untaxed = cents(
        order["amount_untaxed"]
            .as_f64()
            .or(order["amount_total"].as_f64())
            .unwrap_or(0.0)
            - invoiced("amount_untaxed"),
    );
    let or_false = |v: &Value| if v.is_null() { json!(false) } else { v.clone() };
    let partner = match &order["partner_invoice_id"] {
        Value::Null | Value::Bool(false) => or_false(&order["partner_id"]),
        p => p.clone(),
    };
    let currency = match &order["currency_id"] {
        Value::Null | Value::Bool(false) => json!([1, "USD"]),
        c => c.clone(),
    };
    let origin = order["name"].as_str().unwrap_or("").to_owned();
    let id = next_id(all);
    all.push(
        json!({"_model": "account.move", "id": id, "name": "/", "state": "draft",
        "move_type": "out_invoice", "partner_id": partner,
        "partner_shipping_id": or_false(&order["partner_shipping_id"]),
        "ref": order["client_order_ref"].as_str().unwrap_or(""), "invoice_origin": origin,
        "narration": or_false(&order["note"]), "currency_id": currency,
        "company_id": or_false(&order["company_id"]), "invoice_date": false,
        "amount_untaxed": untaxed, "amount_tax": cents(total - untaxed), "amount_total": total,
        "amount_residual": total, "payment_state": "not_paid", "invoice_line_ids": [],
        "_picking_ids": delivered}),
    );
    let note = next_id(all);
    all.push(json!({"_model": "mail.message", "id": note, "model": "account.move", "res_id": id,
        "body": format!("<p>This journal entry has been created from: <a href=\"#\" data-oe-model=\"sale.order\" data-oe-id=\"{so_id}\">{origin}</a></p>"),
        "message_type": "notification", "subtype_id": [2, "Note"], "partner_ids": [],
        "author_id": [3, "Mitchell Admin"], "mail_activity_type_id": false, "attachment_ids": [],
        "date": "2026-11-23 08:00:00"}));
    let open = all
        .iter()
        .any(|r| outgoing(r) && r["state"] != "done" && r["state"] != "cancel");
    for r in all
        .iter_mut()
        .filter(|r| is_one_of(r, "sale.order", &[so_id]))
    {
        match r["invoice_ids"].as_array_mut() {
            Some(a) => a.push(json!(id)),
            None => r["invoice_ids"] = json!([id]),
        }
        r["invoice_status"] = json!(if open { "no" } else { "invoiced" });
    }
    Ok(Some(
        json!({"name": "Invoices", "type": "ir.actions.act_window",
        "res_model": "account.move", "res_id": id, "views": [[1083, "form"]],
        "context": {"default_move_type": "out_invoice", "default_partner_id": m2o_id(&order["partner_id"]),
                    "default_invoice_origin": origin}}),
    ))
}

/// `account.move.action_post` (`_post`): every move must be a draft (else Odoo's
/// `UserError` "The entry … (id …) must be in draft.", nothing posted); each gets the
/// next number of its year (`INV/2026/00001`, …), `state` `posted`, an `invoice_date`.
/// Answers `false`, as Odoo does.
fn post_moves(all: &mut [Value], ids: &[i64]) -> Result<Option<Value>, Value> {
    let refused: Vec<String> = all
        .iter()
        .filter(|r| is_one_of(r, "account.move", ids) && r["state"] != "draft")
        .map(|r| {
            format!(
                "The entry {} (id {}) must be in draft.",
                r["name"].as_str().unwrap_or("/"),
                r["id"]
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(error("odoo.exceptions.UserError", &refused.join("\n")));
    }
    let mut number = all
        .iter()
        .filter(|r| r["_model"] == "account.move")
        .filter(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("INV/2026/"))
        })
        .count();
    for r in all.iter_mut().filter(|r| is_one_of(r, "account.move", ids)) {
        number += 1;
        r["state"] = json!("posted");
        r["name"] = json!(format!("INV/2026/{number:05}"));
        if r["invoice_date"].as_str().is_none() {
            r["invoice_date"] = json!("2026-11-23");
        }
    }
    Ok(Some(json!(false)))
}

fn is_one_of(r: &Value, model: &str, ids: &[i64]) -> bool {
    r["_model"] == model && r["id"].as_i64().is_some_and(|id| ids.contains(&id))
}

fn next_id(all: &[Value]) -> i64 {
    all.iter()
        .filter_map(|r| r["id"].as_i64())
        .max()
        .unwrap_or(0)
        + 1
}

/// `stock.picking.button_validate` as Odoo 18 runs it (stock/models/stock_picking.py:
/// `_sanity_check`, `_pre_action_done_hook`, `_check_backorder`, then `_action_done`
/// with stock.move `_action_done` and `_create_backorder`), for pickings with moves:
/// - no quantity on any open move: `UserError` (also for a picking already done);
/// - quantities but nothing picked: every move is picked;
/// - a move not picked, or picked for less than its demand, and no `skip_backorder` in
///   the context: the "Create Backorder?" action, its context the caller's plus
///   `button_validate_picking_ids`;
/// - otherwise picked moves are done for their quantity (a move done for less is split,
///   the rest a new move), and the open moves go to a new picking whose `backorder_id`
///   is this one — unless the picking is in `picking_ids_not_to_backorder`, then they
///   are cancelled.
///
/// A picking of the fake without moves stands for one whose moves are reserved in full:
/// it is done at once, or, marked `_partial`, answers the backorder wizard first.
fn button_validate(all: &mut Vec<Value>, ids: &[i64], ctx: &Value) -> Result<Option<Value>, Value> {
    let mut ctx = match ctx {
        Value::Object(_) => ctx.clone(),
        _ => json!({}),
    };
    if ctx["button_validate_picking_ids"].is_null() {
        ctx["button_validate_picking_ids"] = json!(ids);
    }
    let no_quantities = || {
        error(
            "odoo.exceptions.UserError",
            "You cannot validate a transfer if no quantities are reserved. To force the transfer, encode quantities.",
        )
    };
    let skip_backorder = ctx["skip_backorder"] == json!(true);
    let not_to_backorder: Vec<i64> = ctx["picking_ids_not_to_backorder"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let mut to_backorder = Vec::new();
    for &pid in ids {
        let Some(picking) = all
            .iter()
            .find(|r| is_one_of(r, "stock.picking", &[pid]))
            .cloned()
        else {
            return Err(missing("stock.picking", &[pid]));
        };
        if picking["state"] == "done" {
            return Err(no_quantities());
        }
        let of_picking =
            |r: &Value| r["_model"] == "stock.move" && r["picking_id"].get(0) == Some(&json!(pid));
        let has_moves = all.iter().any(of_picking);
        let open = |r: &Value| of_picking(r) && r["state"] != "done" && r["state"] != "cancel";
        let qty = |r: &Value| r["quantity"].as_f64().unwrap_or(0.0);
        let demand = |r: &Value| r["product_uom_qty"].as_f64().unwrap_or(0.0);
        if !has_moves {
            if picking["_partial"] == json!(true) && !skip_backorder {
                to_backorder.push(pid);
            }
            continue;
        }
        if all.iter().filter(|r| open(r)).all(|r| qty(r) <= 0.0) {
            return Err(no_quantities());
        }
        let has_pick = all
            .iter()
            .any(|r| of_picking(r) && r["picked"] == json!(true));
        if !has_pick {
            for m in all.iter_mut().filter(|r| of_picking(r)) {
                m["picked"] = json!(true);
            }
        }
        let short = all.iter().filter(|r| open(r)).any(|r| {
            (demand(r) > 0.0 && r["picked"] != json!(true))
                || (r["picked"] == json!(true) && qty(r) < demand(r))
        });
        if short && !skip_backorder {
            to_backorder.push(pid);
        }
    }
    if !to_backorder.is_empty() {
        let mut wctx = ctx.clone();
        wctx["default_show_transfers"] = json!(false);
        wctx["default_pick_ids"] = json!(to_backorder
            .iter()
            .map(|i| json!([4, i]))
            .collect::<Vec<_>>());
        return Ok(Some(
            json!({"name": "Create Backorder?", "type": "ir.actions.act_window", "view_mode": "form",
            "res_model": "stock.backorder.confirmation", "views": [[893, "form"]], "view_id": 893, "target": "new",
            "context": wctx}),
        ));
    }
    for &pid in ids {
        let cancel_backorder = not_to_backorder.contains(&pid);
        let Some(picking) = all
            .iter()
            .find(|r| is_one_of(r, "stock.picking", &[pid]))
            .cloned()
        else {
            continue;
        };
        let move_ids: Vec<i64> = all
            .iter()
            .filter(|r| {
                r["_model"] == "stock.move"
                    && r["picking_id"].get(0) == Some(&json!(pid))
                    && r["state"] != "done"
                    && r["state"] != "cancel"
            })
            .filter_map(|r| r["id"].as_i64())
            .collect();
        let mut rest = Vec::new();
        for mid in &move_ids {
            let Some(m) = all.iter_mut().find(|r| is_one_of(r, "stock.move", &[*mid])) else {
                continue;
            };
            let (q, d) = (
                m["quantity"].as_f64().unwrap_or(0.0),
                m["product_uom_qty"].as_f64().unwrap_or(0.0),
            );
            if q <= 0.0 || m["picked"] != json!(true) {
                if cancel_backorder {
                    m["state"] = json!("cancel");
                } else {
                    rest.push(*mid);
                }
                continue;
            }
            m["state"] = json!("done");
            if q < d {
                m["product_uom_qty"] = json!(q);
                if !cancel_backorder {
                    let mut split = m.clone();
                    split["product_uom_qty"] = json!(d - q);
                    split["quantity"] = json!(d - q);
                    split["picked"] = json!(false);
                    split["state"] = json!("assigned");
                    let id = next_id(all);
                    split["id"] = json!(id);
                    all.push(split);
                    rest.push(id);
                }
            }
        }
        let partial_without_moves =
            move_ids.is_empty() && picking["_partial"] == json!(true) && !cancel_backorder;
        if !rest.is_empty() || partial_without_moves {
            let id = next_id(all);
            let name = format!("WH/OUT/{id:05}");
            let mut bo = picking.clone();
            if let Some(o) = bo.as_object_mut() {
                o.remove("_partial");
            }
            bo["id"] = json!(id);
            bo["name"] = json!(name);
            bo["state"] = json!("assigned");
            bo["backorder_id"] = json!([pid, picking["name"]]);
            bo["carrier_tracking_ref"] = json!(false);
            bo["date_done"] = json!(false);
            all.push(bo);
            for m in all.iter_mut().filter(|r| is_one_of(r, "stock.move", &rest)) {
                m["picking_id"] = json!([id, name]);
            }
        }
        if let Some(p) = all
            .iter_mut()
            .find(|r| is_one_of(r, "stock.picking", &[pid]))
        {
            p["state"] = json!("done");
            p["date_done"] = json!("2026-11-23 08:00:00");
        }
    }
    Ok(Some(json!(true)))
}

/// `search_read`: the records of `model` matching the domain (archived ones, `active`
/// false, only with `active_test: false` in the context), in the `order` asked (`id` by
/// default), from `offset`, at most `limit` of them (0 or none: every one).
fn search_read(all: &[Value], model: &str, kw: &Value) -> Value {
    let archived_too = kw["context"]["active_test"] == json!(false);
    let mut rows: Vec<&Value> = all
        .iter()
        .filter(|r| r["_model"] == model && matches(r, &kw["domain"]))
        .filter(|r| archived_too || r["active"] != json!(false))
        .collect();
    let order: Vec<(&str, bool)> = kw["order"]
        .as_str()
        .unwrap_or("id")
        .split(',')
        .filter_map(|term| {
            let mut words = term.split_whitespace();
            let field = words.next()?;
            Some((
                field,
                words.next().is_some_and(|d| d.eq_ignore_ascii_case("desc")),
            ))
        })
        .collect();
    rows.sort_by(|a, b| {
        order
            .iter()
            .map(|(f, desc)| {
                let o = sort_key(&a[*f]).cmp(&sort_key(&b[*f]));
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let offset = kw["offset"].as_u64().unwrap_or(0) as usize;
    let limit = match kw["limit"].as_u64() {
        Some(0) | None => usize::MAX,
        Some(n) => n as usize,
    };
    Value::Array(
        rows.into_iter()
            .skip(offset)
            .take(limit)
            .map(|r| only(model, computed(all, r), &kw["fields"]))
            .collect(),
    )
}

/// A value as `order` compares it: text as it is, numbers zero-padded, a many2one by id.
fn sort_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => format!("{i:020}"),
            None => format!("{:030.9}", n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(a) => a.first().map(sort_key).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A row as `search_read` and `read` answer it: `id` and every field asked for (every
/// field of the model when none is), a field the record has no value for read as Odoo
/// reads an empty one ([`Kind`]); nothing else.
fn only(model: &str, rec: Value, fields: &Value) -> Value {
    let asked: Vec<String> = match fields.as_array().filter(|a| !a.is_empty()) {
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => match fields_of(model) {
            Some(specs) => specs.map(|f| spec_name(f).to_owned()).collect(),
            None => rec
                .as_object()
                .map(|o| o.keys().filter(|k| !k.starts_with('_')).cloned().collect())
                .unwrap_or_default(),
        },
    };
    let mut row = serde_json::Map::new();
    row.insert("id".into(), rec["id"].clone());
    for f in asked {
        let v = match rec.get(&f) {
            Some(v) if !v.is_null() => v.clone(),
            _ => field_kind(model, &f).unwrap_or(Kind::Other).empty(),
        };
        row.insert(f, v);
    }
    Value::Object(row)
}

/// What a field is, for how it reads when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One2many or many2many: `[]`.
    Many,
    /// Float or monetary: `0.0`.
    Float,
    /// Integer or many2one reference (`res_id`): `0`.
    Int,
    /// Char, text, HTML, date, datetime, selection, many2one, boolean: `false`.
    Other,
}

impl Kind {
    fn empty(self) -> Value {
        match self {
            Kind::Many => json!([]),
            Kind::Float => json!(0.0),
            Kind::Int => json!(0),
            Kind::Other => json!(false),
        }
    }
}

/// The fields of the models the fake serves, as a real Odoo 18 has them with
/// `sale_management`, `stock`, `stock_delivery`, `account` and what they pull in (read in
/// the source: Disassembling-Odoo/core @ 504b0670, every field checked there): a subset
/// of each model's — those callers use, and others around them. `name:many` is a
/// one2many or many2many, `name:float` a float or monetary field, `name:int` an integer
/// or a many2one reference; the rest read `false` when empty. `id` is every model's. A
/// model not listed here takes any field (read `false` when its records lack it).
/// Odoo 19 (JSON-2) is served the same fields: its recorded answers to the connector's
/// reads have every field asked for.
const FIELDS: &[(&str, &str)] = &[
    (
        "stock.picking",
        "name origin note partner_id company_id user_id state picking_type_id \
         picking_type_code location_id location_dest_id move_type priority scheduled_date \
         date_deadline date date_done move_ids:many move_ids_without_package:many \
         move_line_ids:many backorder_id backorder_ids:many return_id return_ids:many \
         products_availability_state sale_id carrier_id carrier_tracking_ref \
         carrier_tracking_url carrier_price:float delivery_type weight:float \
         shipping_weight:float weight_uom_name is_return_picking destination_country_code \
         is_locked printed activity_ids:many message_ids:many display_name create_date \
         create_uid write_date write_uid",
    ),
    (
        "sale.order",
        "name state locked invoice_status delivery_status picking_ids:many \
         delivery_count:int effective_date expected_date warehouse_id picking_policy \
         client_order_ref origin date_order commitment_date validity_date partner_id \
         partner_invoice_id partner_shipping_id order_line:many amount_untaxed:float \
         amount_tax:float amount_total:float currency_id invoice_ids:many \
         invoice_count:int company_id user_id note carrier_id delivery_set \
         shipping_weight:float activity_ids:many message_ids:many display_name \
         create_date create_uid write_date write_uid",
    ),
    (
        "res.partner",
        "name is_company parent_id commercial_company_name company_name \
         commercial_partner_id type street street2 city zip state_id country_id \
         country_code email phone mobile ref vat active company_id lang child_ids:many \
         user_ids:many display_name create_date create_uid write_date write_uid",
    ),
    (
        "res.company",
        "name partner_id currency_id street street2 city zip state_id country_id email \
         phone vat parent_id display_name create_date create_uid write_date write_uid",
    ),
    (
        "res.currency",
        "name symbol rounding:float decimal_places:int active position display_name \
         create_date create_uid write_date write_uid",
    ),
    (
        "res.country",
        "name code state_ids:many phone_code:int display_name create_date create_uid \
         write_date write_uid",
    ),
    (
        "res.country.state",
        "name code country_id display_name create_date create_uid write_date write_uid",
    ),
    (
        "stock.warehouse",
        "name code partner_id company_id lot_stock_id active display_name create_date \
         create_uid write_date write_uid",
    ),
    (
        "stock.picking.type",
        "name code warehouse_id company_id sequence_code active default_location_src_id \
         default_location_dest_id display_name create_date create_uid write_date \
         write_uid",
    ),
    (
        "stock.move",
        "name state product_id product_uom_qty:float product_qty:float quantity:float \
         picked product_uom picking_id location_id location_dest_id date date_deadline \
         origin move_line_ids:many sale_line_id weight:float company_id display_name \
         create_date create_uid write_date write_uid",
    ),
    (
        "stock.move.line",
        "move_id product_id quantity:float picked lot_id lot_name package_id \
         result_package_id picking_id display_name create_date create_uid write_date \
         write_uid",
    ),
    (
        "product.product",
        "name default_code barcode type is_storable tracking weight:float volume:float \
         uom_id list_price:float invoice_policy qty_available:float \
         virtual_available:float free_qty:float active product_tmpl_id display_name \
         create_date create_uid write_date write_uid",
    ),
    (
        "mail.message",
        "body model res_id:int record_name message_type subtype_id author_id date \
         partner_ids:many attachment_ids:many mail_activity_type_id \
         tracking_value_ids:many subject parent_id notification_ids:many display_name \
         create_date create_uid write_date write_uid",
    ),
    (
        "mail.activity",
        "res_model_id res_model res_id:int res_name activity_type_id summary note \
         date_deadline date_done user_id state active automated display_name create_date \
         create_uid write_date write_uid",
    ),
    (
        "ir.attachment",
        "name type res_model res_id:int res_field datas mimetype file_size:int public url \
         checksum description company_id display_name create_date create_uid write_date \
         write_uid",
    ),
    (
        "ir.model.data",
        "module name model res_id:int noupdate complete_name display_name create_date \
         create_uid write_date write_uid",
    ),
    (
        "res.users",
        "login name partner_id company_id company_ids:many active share email \
         display_name create_date create_uid write_date write_uid",
    ),
    (
        "account.move",
        "name ref state payment_state move_type partner_id partner_shipping_id \
         invoice_date invoice_date_due invoice_origin amount_untaxed:float \
         amount_tax:float amount_total:float amount_residual:float currency_id company_id \
         invoice_line_ids:many line_ids:many payment_reference journal_id narration \
         display_name create_date create_uid write_date write_uid",
    ),
    (
        "delivery.carrier",
        "name active sequence:int delivery_type integration_level prod_environment \
         product_id company_id tracking_url fixed_price:float margin:float free_over \
         amount:float display_name create_date create_uid write_date write_uid",
    ),
    (
        "mail.notification",
        "mail_message_id res_partner_id notification_type notification_status is_read \
         failure_type display_name create_date create_uid write_date write_uid",
    ),
    (
        "sale.advance.payment.inv",
        "advance_payment_method sale_order_ids:many amount:float fixed_amount:float \
         consolidated_billing display_name create_date create_uid write_date write_uid",
    ),
    (
        "stock.backorder.confirmation",
        "pick_ids:many show_transfers backorder_confirmation_line_ids:many display_name \
         create_date create_uid write_date write_uid",
    ),
];

/// The field's name in a [`FIELDS`] entry (`move_ids:many` → `move_ids`).
fn spec_name(spec: &str) -> &str {
    spec.split_once(':').map_or(spec, |(name, _)| name)
}

/// The fields of `model` ([`FIELDS`]), when the fake knows them.
fn fields_of(model: &str) -> Option<impl Iterator<Item = &'static str>> {
    FIELDS
        .iter()
        .find(|(m, _)| *m == model)
        .map(|(_, f)| f.split_whitespace())
}

/// What the field `model.field` is; None when the model has no such field.
fn field_kind(model: &str, field: &str) -> Option<Kind> {
    if field == "id" {
        return Some(Kind::Int);
    }
    let Some(mut specs) = fields_of(model) else {
        return Some(Kind::Other);
    };
    specs
        .find(|s| spec_name(s) == field)
        .map(|s| match s.split_once(':') {
            Some((_, "many")) => Kind::Many,
            Some((_, "float")) => Kind::Float,
            Some((_, "int")) => Kind::Int,
            _ => Kind::Other,
        })
}

/// Odoo's `ValueError` for a field asked for that `model` does not have (recorded: Odoo
/// 18 says `Invalid field 'x' on model 'stock.picking'`, Odoo 19 `… on 'stock.picking'`).
fn check_fields(model: &str, fields: &Value, major: i64) -> Result<(), Value> {
    for f in fields
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if field_kind(model, f).is_none() {
            return Err(value_error(&if major >= 19 {
                format!("Invalid field '{f}' on '{model}'")
            } else {
                format!("Invalid field '{f}' on model '{model}'")
            }));
        }
    }
    Ok(())
}

/// Odoo's `ValueError` for a domain leaf on a field `model` does not have (recorded from
/// Odoo 18: `Invalid field stock.picking.x in leaf ('x', '=', 1)`); a dotted path is
/// checked on its first field.
fn check_domain(model: &str, domain: &Value) -> Result<(), Value> {
    for leaf in domain
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t.is_array())
    {
        let path = leaf[0].as_str().unwrap_or("");
        let field = path.split('.').next().unwrap_or(path);
        if field_kind(model, field).is_none() {
            let parts: Vec<String> = leaf.as_array().into_iter().flatten().map(py_repr).collect();
            return Err(value_error(&format!(
                "Invalid field {model}.{field} in leaf ({})",
                parts.join(", ")
            )));
        }
    }
    Ok(())
}

/// Odoo's `ValueError` for values of a field `model` does not have, in `write` or
/// `create` (recorded from Odoo 18: `Invalid field 'x' on model 'stock.picking'`).
fn check_values(model: &str, vals: Option<&serde_json::Map<String, Value>>) -> Result<(), Value> {
    for k in vals.into_iter().flat_map(|v| v.keys()) {
        if field_kind(model, k).is_none() {
            return Err(value_error(&format!(
                "Invalid field '{k}' on model '{model}'"
            )));
        }
    }
    Ok(())
}

/// A JSON value as Python prints it (`'text'`, `1`, `True`, `None`, `[1, 2]`).
fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\'') && !s.contains('"') => format!("\"{s}\""),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&json!(k)), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
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

/// Many2one fields the fake knows, with their comodel: a value written as a bare id reads
/// back as `[id, name]`, as in Odoo.
const MANY2ONE: &[(&str, &str)] = &[
    ("carrier_id", "delivery.carrier"),
    ("partner_id", "res.partner"),
    ("company_id", "res.company"),
    ("sale_id", "sale.order"),
    ("picking_type_id", "stock.picking.type"),
    ("warehouse_id", "stock.warehouse"),
    ("state_id", "res.country.state"),
    ("country_id", "res.country"),
    ("currency_id", "res.currency"),
    ("user_id", "res.users"),
];

/// A record as Odoo reads it: many2one ids with their names, and the computed fields the
/// fake knows: `display_name` (the name, unless seeded), `stock.picking.carrier_tracking_url`
/// (from the carrier's `tracking_url` as `stock_delivery` computes it for `fixed` /
/// `base_on_rule` carriers), `sale.order.picking_ids` (the pickings whose `sale_id` is
/// the order, unless seeded — a test may list pickings the fake does not hold).
fn computed(all: &[Value], rec: &Value) -> Value {
    let mut r = rec.clone();
    if r.get("display_name").is_none() && r["name"].is_string() {
        r["display_name"] = r["name"].clone();
    }
    if r["_model"] == "sale.order" && r.get("picking_ids").is_none() {
        let order = r["id"].as_i64();
        let pickings: Vec<&Value> = all
            .iter()
            .filter(|p| p["_model"] == "stock.picking" && m2o_id(&p["sale_id"]) == order)
            .map(|p| &p["id"])
            .collect();
        r["picking_ids"] = json!(pickings);
    }
    let name_of = |model: &str, id: i64| {
        all.iter()
            .find(|x| is_one_of(x, model, &[id]))
            .and_then(|x| x["display_name"].as_str().or(x["name"].as_str()))
            .map_or_else(|| format!("{model},{id}"), str::to_owned)
    };
    for (field, comodel) in MANY2ONE {
        if let Some(id) = r[*field].as_i64() {
            r[*field] = json!([id, name_of(comodel, id)]);
        }
    }
    if r["_model"] == "stock.picking" {
        let carrier = r["carrier_id"].get(0).and_then(Value::as_i64);
        let url = match (carrier, r["carrier_tracking_ref"].as_str()) {
            (Some(c), Some(t)) if !t.is_empty() => all
                .iter()
                .find(|x| is_one_of(x, "delivery.carrier", &[c]))
                .and_then(|x| x["tracking_url"].as_str())
                .map(|u| json!(u.replace("<shipmenttrackingnumber>", t))),
            _ => None,
        };
        r["carrier_tracking_url"] = url.unwrap_or(json!(false));
    }
    r
}

fn value_error(message: &str) -> Value {
    error("builtins.ValueError", message)
}

/// The API user of the fake (`res.users` 2), as Odoo names it in a `MissingError`.
const UID: i64 = 2;

/// Odoo's `MissingError` for records of `model` that do not exist (recorded from Odoo 18
/// and 19: `Record does not exist or has been deleted.\n(Record: stock.picking(999999,),
/// User: 8)`).
fn missing(model: &str, ids: &[i64]) -> Value {
    error(
        "odoo.exceptions.MissingError",
        &format!(
            "Record does not exist or has been deleted.\n(Record: {model}{}, User: {UID})",
            py_tuple(ids)
        ),
    )
}

/// `MissingError` unless every record of `ids` exists.
fn the_records(all: &[Value], model: &str, ids: &[i64]) -> Result<(), Value> {
    let gone: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !all.iter().any(|r| is_one_of(r, model, &[*id])))
        .collect();
    match gone.as_slice() {
        [] => Ok(()),
        gone => Err(missing(model, gone)),
    }
}

/// The one record a `message_post` or `activity_schedule` is called on.
fn the_record<'a>(all: &'a [Value], model: &str, ids: &[i64]) -> Result<&'a Value, Value> {
    let [id] = ids else {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        return Err(value_error(&format!(
            "Expected singleton: {model}({})",
            ids.join(", ")
        )));
    };
    all.iter()
        .find(|r| is_one_of(r, model, &[*id]))
        .ok_or_else(|| missing(model, &[*id]))
}

/// HTML as Odoo stores it in a sanitized HTML field (`mail.message.body`,
/// `mail.activity.note`): the sanitizer writes text back out with only `&`, `<` and `>`
/// escaped, so quotes written as entities (`&quot;`, `&#34;`, `&#39;`) come back as the
/// characters (attributes are left as they are).
fn sanitized(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&unquote(&rest[..open]));
        let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&rest[open..close]);
        rest = &rest[close..];
    }
    out.push_str(&unquote(rest));
    out
}

/// Quotes written as entities, as the characters.
fn unquote(text: &str) -> String {
    ["&quot;", "&#34;", "&#x22;"]
        .iter()
        .fold(text.to_owned(), |t, e| t.replace(e, "\""))
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&apos;", "'")
}

/// Text as Odoo 18 and 19 store it in an HTML field: `message_post` escapes a str body
/// with markupsafe (`&#34;`, `&#39;` for quotes), then the HTML sanitizer writes the
/// text back out with only `&`, `<` and `>` escaped (recorded: `"quoted" 'single'` stays
/// as it is).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `mail.thread.message_post` as Odoo 18 runs it over RPC (mail/models/mail_thread.py):
/// on one existing record (else `MissingError`); a str body is escaped and kept as a
/// paragraph, `body_is_html` keeps it as HTML; `partner_ids` must be a list of ids
/// (else `ValueError`); the subtype comes from `subtype_xmlid` (default, and for an XML
/// id of no subtype, *Note*); the message type defaults to `notification`; the author is
/// the API user's partner. Odoo then notifies the partners named: unless the subtype is
/// internal (*Note*), each gets an e-mail, recorded here as a `mail.notification` of type
/// `email`. Answers the message (`@api.returns`: its id over JSON-RPC, `[id]` over
/// JSON-2).
fn message_post(
    all: &mut Vec<Value>,
    model: &str,
    ids: &[i64],
    kw: &Value,
) -> Result<Option<Value>, Value> {
    let rec = the_record(all, model, ids)?;
    let record_name = rec["display_name"]
        .as_str()
        .or(rec["name"].as_str())
        .unwrap_or("")
        .to_owned();
    let partners: Vec<i64> = match &kw["partner_ids"] {
        Value::Null | Value::Bool(false) => Vec::new(),
        Value::Array(a) if a.iter().all(Value::is_i64) => {
            a.iter().filter_map(Value::as_i64).collect()
        }
        other => {
            return Err(value_error(&format!(
                "Posting a message should receive partners as a list of IDs (received {other})"
            )))
        }
    };
    let (subtype, internal) = match kw["subtype_xmlid"].as_str() {
        Some("mail.mt_comment") => (json!([1, "Discussions"]), false),
        Some("mail.mt_note") | None => (json!([2, "Note"]), true),
        Some("mail.mt_activities") => (json!([3, "Activities"]), true),
        // An XML id that names no subtype: Odoo falls back to the Note (recorded).
        Some(_) => (json!([2, "Note"]), true),
    };
    let body = kw["body"].as_str().unwrap_or("");
    let stored = if kw["body_is_html"] == json!(true) {
        sanitized(body)
    } else {
        format!("<p>{}</p>", escape(body))
    };
    let id = next_id(all);
    all.push(
        json!({"_model": "mail.message", "id": id, "model": model, "res_id": ids[0],
        "record_name": record_name, "body": stored,
        "message_type": kw["message_type"].as_str().unwrap_or("notification"),
        "subtype_id": subtype, "partner_ids": partners, "author_id": [3, "Mitchell Admin"],
        "mail_activity_type_id": kw.get("mail_activity_type_id").cloned().unwrap_or(json!(false)),
        "attachment_ids": [], "date": "2026-11-23 08:00:00"}),
    );
    if !internal {
        for p in &partners {
            let n = next_id(all);
            all.push(json!({"_model": "mail.notification", "id": n,
                "mail_message_id": [id, record_name], "res_partner_id": [p, format!("res.partner,{p}")],
                "notification_type": "email", "notification_status": "ready"}));
        }
    }
    Ok(Some(recordset("mail.message", &[id], true)))
}

/// The activity types of a fresh Odoo 18 (mail/data/mail_activity_data.xml), by XML id.
fn activity_type(xmlid: &str) -> Option<Value> {
    let (id, name) = match xmlid {
        "mail.mail_activity_data_email" => (1, "Email"),
        "mail.mail_activity_data_call" => (2, "Call"),
        "mail.mail_activity_data_meeting" => (3, "Meeting"),
        "mail.mail_activity_data_todo" => (4, "To-Do"),
        "mail.mail_activity_data_upload_document" => (5, "Upload Document"),
        "mail.mail_activity_data_warning" => (6, "Exception"),
        _ => return None,
    };
    Some(json!([id, name]))
}

/// `mail.activity.mixin.activity_schedule` (mail/models/mail_activity_mixin.py): one
/// activity on the record (else `MissingError`), of the type `act_type_xmlid` names (the
/// To-Do when unknown), for `user_id` (default: the calling user, 2), due
/// `date_deadline` (default today). Answers the activities: over JSON-RPC as a string,
/// `"mail.activity(15,)"`, as Odoo does for a method without `@api.returns`; over JSON-2
/// as their ids, `[15]`.
fn activity_schedule(
    all: &mut Vec<Value>,
    model: &str,
    ids: &[i64],
    kw: &Value,
) -> Result<Option<Value>, Value> {
    let rec = the_record(all, model, ids)?;
    let res_name = rec["name"].clone();
    let kind = kw["act_type_xmlid"]
        .as_str()
        .and_then(activity_type)
        .unwrap_or(json!([4, "To-Do"]));
    let user = match &kw["user_id"] {
        Value::Number(u) => json!(u),
        _ => json!(2),
    };
    let id = next_id(all);
    all.push(
        json!({"_model": "mail.activity", "id": id, "res_model": model, "res_id": ids[0],
        "res_name": res_name, "activity_type_id": kind, "summary": kw["summary"],
        "note": kw["note"].as_str().map_or(json!(false), |n| json!(sanitized(n))),
        "user_id": user, "automated": true, "active": true, "state": "today",
        "date_deadline": kw["date_deadline"].as_str().unwrap_or("2026-11-23")}),
    );
    Ok(Some(recordset("mail.activity", &[id], false)))
}

/// `mail.activity.action_feedback` / `action_done` (`_action_done`): for each activity, a
/// message on its record — type `notification`, subtype *Activities*, its
/// `mail_activity_type_id` the activity's type, its body the "done" line with the
/// original note and the feedback as Odoo 18 renders them (`mail.message_activity_done`,
/// recorded) — then the activity is deleted (Odoo archives it instead when its type
/// `keep_done`, which none of the fake's types does, as in a fresh Odoo). An activity
/// that does not exist (any more) is a `MissingError`. Answers the first message's id (a
/// number over both protocols, recorded).
fn activity_done(all: &mut Vec<Value>, ids: &[i64], kw: &Value) -> Result<Option<Value>, Value> {
    the_records(all, "mail.activity", ids)?;
    let done: Vec<Value> = all
        .iter()
        .filter(|r| is_one_of(r, "mail.activity", ids) && r["active"] != json!(false))
        .cloned()
        .collect();
    let mut first = None;
    for a in &done {
        let kind = a["activity_type_id"][1].as_str().unwrap_or("");
        let icon = match kind {
            "Email" => "fa-envelope",
            "Call" => "fa-phone",
            "Meeting" => "fa-users",
            "Upload Document" => "fa-upload",
            "Exception" => "fa-warning",
            _ => "fa-check",
        };
        let mut body = format!(
            "\n    <p>\n        <span class=\"fa {icon} fa-fw\"></span><span>{}</span> done\n",
            escape(kind)
        );
        if let Some(summary) = a["summary"].as_str().filter(|s| !s.is_empty()) {
            body.push_str(&format!(
                "        <span>: </span><span>{}</span>\n",
                escape(summary)
            ));
        }
        body.push_str("    </p>\n    \n");
        if let Some(note) = a["note"].as_str().filter(|n| !n.is_empty()) {
            body.push_str(&format!(
                "        <div class=\"o_mail_note_title fw-bold\">Original note:</div>\n        <div>{note}</div>\n"
            ));
        }
        if let Some(f) = kw["feedback"].as_str().filter(|f| !f.is_empty()) {
            let lines: Vec<String> = f.split('\n').map(escape).collect();
            body.push_str(&format!(
                "    <div>\n        <div class=\"fw-bold\">Feedback:</div>\n            {}\n    </div>\n",
                lines.join("<br>\n            ")
            ));
        }
        let id = next_id(all);
        all.push(json!({"_model": "mail.message", "id": id, "model": a["res_model"], "res_id": a["res_id"],
            "body": body, "message_type": "notification", "subtype_id": [3, "Activities"],
            "mail_activity_type_id": a["activity_type_id"], "author_id": [3, "Mitchell Admin"],
            "partner_ids": [], "attachment_ids": [], "date": "2026-11-23 08:00:00"}));
        first.get_or_insert(id);
        all.retain(|r| !is_one_of(r, "mail.activity", &[a["id"].as_i64().unwrap_or(-1)]));
    }
    Ok(Some(first.map_or(json!(false), |id| json!(id))))
}

/// `ir.attachment.create`: each attachment kept with Odoo's defaults (`type` `binary`,
/// `res_field` and `public` false, `file_size` from the decoded `datas`, a generic
/// `mimetype` when none is given). Answers the new ids.
fn create_attachments(all: &mut Vec<Value>, vals_list: &Value) -> Value {
    let mut ids = Vec::new();
    for v in vals_list.as_array().cloned().unwrap_or_default() {
        let id = next_id(all);
        let datas = v["datas"].as_str().unwrap_or("").to_owned();
        let padding = datas.bytes().rev().take_while(|b| *b == b'=').count();
        let mut rec = json!({"_model": "ir.attachment", "id": id, "type": "binary", "res_field": false,
            "public": false, "mimetype": "application/octet-stream", "res_model": false, "res_id": 0,
            "file_size": (datas.len() / 4 * 3).saturating_sub(padding)});
        if let (Some(r), Some(given)) = (rec.as_object_mut(), v.as_object()) {
            for (k, x) in given {
                r.insert(k.clone(), x.clone());
            }
        }
        all.push(rec);
        ids.push(id);
    }
    json!(ids)
}

/// Adds records to the fake's tables (starting them if empty), each tagged with its
/// `_model`; a record with the `_model` and `id` of one already there replaces it.
pub fn seed(fake: &Fake, records: impl IntoIterator<Item = Value>) {
    let mut guard = fake.records.lock().unwrap();
    let all = guard.get_or_insert_with(Vec::new);
    for rec in records {
        let model = rec["_model"].as_str().unwrap_or("").to_owned();
        let id = rec["id"].as_i64().unwrap_or(-1);
        all.retain(|r| !is_one_of(r, &model, &[id]));
        all.push(rec);
    }
}

/// One record as the fake holds it (many2one values as written), for assertions.
pub fn record(fake: &Fake, model: &str, id: i64) -> Option<Value> {
    records_of(fake, model)
        .into_iter()
        .find(|r| r["id"].as_i64() == Some(id))
}

/// The records of `model` attached to the record (`model`/`res_model` and `res_id`).
fn on_record(fake: &Fake, model: &str, of: &str, id: i64) -> Vec<Value> {
    records_of(fake, model)
        .into_iter()
        .filter(|r| (r["model"] == of || r["res_model"] == of) && r["res_id"].as_i64() == Some(id))
        .collect()
}

/// The chatter of a record (`mail.message`), oldest first.
pub fn messages_on(fake: &Fake, model: &str, id: i64) -> Vec<Value> {
    on_record(fake, "mail.message", model, id)
}

/// The attachments of a record (`ir.attachment`; `datas` is the base64 of the file).
pub fn attachments_on(fake: &Fake, model: &str, id: i64) -> Vec<Value> {
    on_record(fake, "ir.attachment", model, id)
}

/// The open activities of a record (`mail.activity`).
pub fn activities_on(fake: &Fake, model: &str, id: i64) -> Vec<Value> {
    on_record(fake, "mail.activity", model, id)
}

/// The customer invoices of sale order `sale_order_id` (`account.move` records of its
/// `invoice_ids`), oldest first: `state` (`draft`, `posted`), `name` (`/` until posted),
/// `amount_total`, `currency_id`, `ref`, `invoice_origin`, …
pub fn invoices_of(fake: &Fake, sale_order_id: i64) -> Vec<Value> {
    let ids = record(fake, "sale.order", sale_order_id)
        .and_then(|o| o["invoice_ids"].as_array().cloned())
        .unwrap_or_default();
    records_of(fake, "account.move")
        .into_iter()
        .filter(|m| ids.contains(&m["id"]))
        .collect()
}

/// The e-mails Odoo would send for a message: the partners its `mail.notification`s name.
pub fn emailed_partners(fake: &Fake, message_id: i64) -> Vec<i64> {
    records_of(fake, "mail.notification")
        .iter()
        .filter(|n| n["mail_message_id"][0].as_i64() == Some(message_id))
        .filter(|n| n["notification_type"] == "email")
        .filter_map(|n| n["res_partner_id"][0].as_i64())
        .collect()
}

/// A company as a fresh Odoo 18 with demo data has it: company 1 *YourCompany* (USD) whose
/// partner 1 is its address (250 Executive Park Blvd, San Francisco, CA 94134, US),
/// warehouse 1 (`WH`, that address) with its outgoing operation type 2 *Delivery Orders*,
/// the US (233) and California (13), delivery carrier 1 *Standard delivery*, the currency
/// 1 USD (`decimal_places` 2), and the API user 2 (login `middleware`, for JSON-2, where
/// the user is found by login).
pub fn company() -> Vec<Value> {
    vec![
        json!({"_model": "res.partner", "id": 1, "name": "YourCompany", "is_company": true,
               "commercial_company_name": "YourCompany", "street": "250 Executive Park Blvd",
               "street2": "Suite 3400", "city": "San Francisco", "zip": "94134",
               "state_id": [13, "California (US)"], "country_id": [233, "United States"],
               "country_code": "US", "phone": "+1 555-555-5556", "email": "info@yourcompany.com",
               "type": "contact", "parent_id": false, "active": true}),
        json!({"_model": "res.company", "id": 1, "name": "YourCompany", "partner_id": [1, "YourCompany"],
               "currency_id": [1, "USD"]}),
        json!({"_model": "res.currency", "id": 1, "name": "USD", "symbol": "$", "rounding": 0.01,
               "decimal_places": 2, "active": true}),
        json!({"_model": "stock.warehouse", "id": 1, "name": "YourCompany", "code": "WH",
               "partner_id": [1, "YourCompany"], "company_id": [1, "YourCompany"], "lot_stock_id": [8, "WH/Stock"]}),
        json!({"_model": "stock.picking.type", "id": 2, "name": "Delivery Orders",
               "display_name": "YourCompany: Delivery Orders", "code": "outgoing",
               "warehouse_id": [1, "YourCompany"], "company_id": [1, "YourCompany"]}),
        json!({"_model": "res.country", "id": 233, "name": "United States", "code": "US"}),
        json!({"_model": "res.country.state", "id": 13, "name": "California", "display_name": "California (US)",
               "code": "CA", "country_id": [233, "United States"]}),
        json!({"_model": "res.country.state", "id": 22, "name": "Illinois", "display_name": "Illinois (US)",
               "code": "IL", "country_id": [233, "United States"]}),
        json!({"_model": "delivery.carrier", "id": 1, "name": "Standard delivery", "delivery_type": "fixed",
               "integration_level": "rate_and_ship", "tracking_url": false, "active": true}),
        json!({"_model": "res.users", "id": 2, "login": "middleware", "name": "Mitchell Admin",
               "partner_id": [3, "Mitchell Admin"]}),
    ]
}

/// A customer (`res.partner`, a company) with a full address in Springfield, IL, US, an
/// e-mail and a phone — the partner created in ODOO.md §3 (#3).
pub fn customer(id: i64, name: &str) -> Value {
    json!({"_model": "res.partner", "id": id, "name": name, "is_company": true,
           "commercial_company_name": name, "street": "1 Main St", "street2": false,
           "city": "Springfield", "zip": "62701", "state_id": [22, "Illinois (US)"],
           "country_id": [233, "United States"], "country_code": "US", "phone": "+1 555 0100",
           "email": "ops@acme.example", "type": "contact", "parent_id": false, "active": true})
}

/// An outgoing picking ready to ship (`assigned`) for `customer` (a [`customer`] record),
/// of operation type 2 of [`company`]'s warehouse: [`picking`] plus the fields a booking
/// reads — `picking_type_id`, `weight` and `shipping_weight` (25 kg), `weight_uom_name`,
/// `carrier_price` 0, no tracking reference.
pub fn ready_picking(id: i64, customer: &Value) -> Value {
    let mut p = picking(id, "assigned", "2026-11-23 07:00:00");
    p["partner_id"] = json!([customer["id"], customer["name"]]);
    p["picking_type_id"] = json!([2, "YourCompany: Delivery Orders"]);
    p["move_type"] = json!("direct");
    p["weight"] = json!(25.0);
    p["shipping_weight"] = json!(25.0);
    p["weight_uom_name"] = json!("kg");
    p["carrier_price"] = json!(0.0);
    p
}

/// Everything an order-to-ship workflow reads for picking `picking_id`: [`company`], the
/// customer 46 *ACME Logistics Test* ([`customer`]), its confirmed sale order 25
/// `S00025` (customer reference `EXT-1`; 250.00 + 37.50 tax = 287.50 USD, the order of
/// ODOO.md §3: 10 × 25.00) and the [`ready_picking`] of that order. Invoicing it
/// (`sale.advance.payment.inv`) answers Odoo's "No items are available to invoice" until
/// the picking is `done`; see what was invoiced with [`invoices_of`].
///
/// Seeding a ready picking for an end-to-end test:
///
/// ```text
/// let (url, fake) = fake_odoo::start(18).await;
/// fake_odoo::seed(&fake, fake_odoo::order_to_ship(20));
/// // or, piece by piece, another customer and a carrier with a tracking link:
/// let acme = fake_odoo::customer(47, "Gemini Furniture");
/// fake_odoo::seed(&fake, fake_odoo::company());
/// fake_odoo::seed(&fake, [acme.clone(), fake_odoo::ready_picking(21, &acme)]);
/// fake_odoo::seed(&fake, [json!({"_model": "delivery.carrier", "id": 7, "name": "UPS",
///     "delivery_type": "fixed", "tracking_url": "https://ups.example/track?n=<shipmenttrackingnumber>"})]);
/// // … run the workflow, then look:
/// let p = fake_odoo::record(&fake, "stock.picking", 20).unwrap();
/// let labels = fake_odoo::attachments_on(&fake, "stock.picking", 20);
/// let told = fake_odoo::messages_on(&fake, "sale.order", 25);
/// ```
///
/// The poller reads the same picking (its `write_date` is 2026-11-23 07:00:00), so a
/// source on this fake emits `order.released` for it.
pub fn order_to_ship(picking_id: i64) -> Vec<Value> {
    let acme = customer(46, "ACME Logistics Test");
    let mut order = sale_order(25, "S00025", Some("EXT-1"));
    order["partner_id"] = json!([46, "ACME Logistics Test"]);
    order["partner_shipping_id"] = json!([46, "ACME Logistics Test"]);
    order["partner_invoice_id"] = json!([46, "ACME Logistics Test"]);
    order["currency_id"] = json!([1, "USD"]);
    order["amount_untaxed"] = json!(250.0);
    order["amount_tax"] = json!(37.5);
    order["amount_total"] = json!(287.5);
    let picking = ready_picking(picking_id, &acme);
    let mut all = company();
    all.extend([acme, order, picking]);
    all
}
