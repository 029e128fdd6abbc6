//! Karrio as the workflows' carrier booking service: the engine's [`Carriers`] port over
//! Karrio's REST API (checked against Karrio 2026.1.32).
//!
//! - quote: `POST /v1/shipments` (shipper, recipient, parcels, `carrier_ids`) makes a
//!   draft shipment with one rate per carrier connection and service;
//! - buy: `POST /v1/shipments/{id}/purchase {selected_rate_id}`; the answer carries the
//!   label (`shipping_documents[].base64`);
//! - void: `POST /v1/shipments/{id}/cancel`;
//! - find: `GET /v1/shipments?reference=…`.
//!
//! The booking's reference is the shipment's `reference` (and its `metadata.
//! waybill_reference`, for people reading Karrio's dashboard). Karrio's `reference` filter
//! matches substrings case-insensitively (`WB-1` also finds `wb-10`), so [`Carriers::find`]
//! keeps exact matches only, across every page. A bought shipment wins over a draft: any
//! status other than `draft` and `cancelled` (`created`, then a tracker's `in_transit`, …)
//! is bought. `GET` answers carry no label bytes, so a found booking's label is fetched
//! from its `label_url`.
//!
//! Answers, as classified ([`FailureKind`]):
//! - 424 `{"messages": [{code, message, carrier_id}]}`: the carrier refused (purchase or
//!   void) → `Permanent`, with the carrier's code (`MOCK_PURCHASE_REJECTED`);
//! - 409 `{"errors": [{code: "state_error"}]}`: bought already (a purchase retried after a
//!   timeout) → the booking is read back and returned; for a void, `Permanent`;
//! - 400 → `InvalidInput`; 401, 403 → `Auth`; 404 and other 4xx → `Permanent`;
//! - 408, 429, 5xx, timeouts, refused connections → `Retryable`.
//!
//! A cancel of a cancelled shipment answers 202: a repeated void is a success.
//! Amounts: Karrio sends JSON numbers (`15.1`); they are kept as the shortest decimal
//! that reads back as the same number, as Karrio's own serializer writes them.

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use std::time::Duration;
use waybill_engine::config::ConfigError;
use waybill_engine::duration;
use waybill_engine::workflow::ports::{
    Address, Booked, BookingRequest, Carriers, Draft, Found, Label, Parcel, PortError, PortFuture,
    Quote,
};
use waybill_model::FailureKind;

/// The most result pages `find` reads (100 shipments each) before it gives up.
const MAX_PAGES: usize = 50;

/// How to reach a Karrio server as the booking service.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KarrioBookingConfig {
    /// Base URL of Karrio's API, e.g. `https://karrio.example.com`.
    pub url: String,
    /// A Karrio API key (`key_…`), sent as `Authorization: Token <key>`; the caller
    /// resolves the secret reference.
    pub api_key: String,
    /// Per-request timeout (default 30 s).
    #[serde(default = "default_timeout", deserialize_with = "duration::de")]
    pub timeout: Duration,
    /// The label format to ask for: `PDF` (default), `ZPL` or `PNG`.
    #[serde(default = "default_label_type")]
    pub label_type: String,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_label_type() -> String {
    "PDF".into()
}

impl std::fmt::Debug for KarrioBookingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KarrioBookingConfig")
            .field("url", &self.url)
            .field("api_key", &"***")
            .field("timeout", &self.timeout)
            .field("label_type", &self.label_type)
            .finish()
    }
}

/// The Karrio booking client ([`Carriers`]).
pub struct KarrioBooking {
    http: reqwest::Client,
    base: String,
    authorization: String,
    label_type: String,
}

impl KarrioBooking {
    /// Validates the configuration (no network) and builds the client.
    pub fn build(cfg: &KarrioBookingConfig) -> Result<KarrioBooking, Vec<ConfigError>> {
        let mut errs = Vec::new();
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            errs.push(ConfigError::new(
                "url",
                "must start with http:// or https://",
            ));
        }
        if cfg.api_key.trim().is_empty() {
            errs.push(ConfigError::new("api_key", "is empty"));
        }
        let label_type = cfg.label_type.to_ascii_uppercase();
        if !matches!(label_type.as_str(), "PDF" | "ZPL" | "PNG") {
            errs.push(ConfigError::new(
                "label_type",
                format!("`{}` (use PDF, ZPL or PNG)", cfg.label_type),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| errs.push(ConfigError::new("", format!("http client: {e}"))))
            .ok();
        match http {
            Some(http) if errs.is_empty() => Ok(KarrioBooking {
                http,
                base: cfg.url.trim_end_matches('/').to_owned(),
                authorization: format!("Token {}", cfg.api_key.trim()),
                label_type,
            }),
            _ => Err(errs),
        }
    }

    /// One request; the status and body of any HTTP answer, or a `Retryable` error.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), PortError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.authorization)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport)?;
        Ok((status, bytes.to_vec()))
    }

    /// A JSON answer with a 2xx status, parsed as `T`; any other status, classified.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, PortError> {
        let (status, bytes) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &bytes));
        }
        parse(status, &bytes)
    }

    /// The shipment `shp_…`, `None` when Karrio has none.
    async fn shipment(&self, id: &str) -> Result<Option<ShipmentWire>, PortError> {
        let (status, bytes) = self
            .send(reqwest::Method::GET, &format!("/v1/shipments/{id}"), None)
            .await?;
        match status {
            404 => Ok(None),
            200..=299 => parse(status, &bytes).map(Some),
            _ => Err(classify(status, &bytes)),
        }
    }

    /// A bought shipment as a booking, its label fetched when the answer has no bytes.
    async fn booked(&self, s: &ShipmentWire) -> Result<Booked, PortError> {
        let mut booked = booked(s)?;
        if booked.label.is_none() {
            if let Some(url) = non_blank(s.label_url.as_deref()) {
                let (status, bytes) = self.send(reqwest::Method::GET, &path_of(url), None).await?;
                if !(200..300).contains(&status) {
                    return Err(classify(status, &bytes));
                }
                booked.label = Some(Label {
                    format: label_format(s, None),
                    bytes,
                });
            }
        }
        Ok(booked)
    }
}

impl Carriers for KarrioBooking {
    fn find<'a>(&'a self, reference: &'a str) -> PortFuture<'a, Found> {
        Box::pin(async move {
            let mut matches = Vec::new();
            for page in 0..MAX_PAGES {
                let path = format!(
                    "/v1/shipments?reference={}&limit=100&offset={}",
                    query_value(reference),
                    page * 100
                );
                let p: PageWire = self.call(reqwest::Method::GET, &path, None).await?;
                let last = p.next.as_ref().is_none_or(Value::is_null) || p.results.is_empty();
                matches.extend(exact(reference, p.results));
                if last {
                    return match choose(matches) {
                        Choice::Booked(s) => self.booked(&s).await.map(Found::Booked),
                        Choice::Draft(s) => Ok(Found::Draft(draft(s))),
                        Choice::Cancelled(id) => Ok(Found::Cancelled(id)),
                        Choice::Nothing => Ok(Found::Nothing),
                    };
                }
            }
            Err(PortError::new(
                FailureKind::Permanent,
                "karrio.too_many_matches",
                format!(
                    "more than {} shipments match reference {reference}",
                    MAX_PAGES * 100
                ),
            ))
        })
    }

    fn quote<'a>(&'a self, req: &'a BookingRequest) -> PortFuture<'a, Draft> {
        Box::pin(async move {
            let body = shipment_request(req, &self.label_type);
            let s: ShipmentWire = self
                .call(reqwest::Method::POST, "/v1/shipments", Some(&body))
                .await?;
            tracing::debug!(booking_id = %s.id, rates = s.rates.len(), "karrio: quoted");
            Ok(draft(s))
        })
    }

    fn buy<'a>(&'a self, booking_id: &'a str, quote_id: &'a str) -> PortFuture<'a, Booked> {
        Box::pin(async move {
            let path = format!("/v1/shipments/{booking_id}/purchase");
            let body = json!({ "selected_rate_id": quote_id });
            let (status, bytes) = self.send(reqwest::Method::POST, &path, Some(&body)).await?;
            if (200..300).contains(&status) {
                let s: ShipmentWire = parse(status, &bytes)?;
                return self.booked(&s).await;
            }
            let refused = classify(status, &bytes);
            if status != 409 {
                return Err(refused);
            }
            // Bought already (a purchase retried after a timeout): the booking it made.
            match self.shipment(booking_id).await? {
                Some(s) if status_of(&s) == Status::Bought => self.booked(&s).await,
                _ => Err(refused),
            }
        })
    }

    fn void<'a>(&'a self, booking_id: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let path = format!("/v1/shipments/{booking_id}/cancel");
            let (status, bytes) = self
                .send(reqwest::Method::POST, &path, Some(&json!({})))
                .await?;
            // 202: cancelled already.
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(classify(status, &bytes))
            }
        })
    }
}

/// `POST /v1/shipments`: addresses, parcels in kg and cm, the reference twice.
pub(crate) fn shipment_request(req: &BookingRequest, label_type: &str) -> Value {
    let mut body = json!({
        "shipper": address(&req.shipper),
        "recipient": address(&req.recipient),
        "parcels": req.parcels.iter().map(parcel).collect::<Vec<_>>(),
        "reference": req.reference,
        "metadata": {"waybill_reference": req.reference},
        "label_type": label_type,
    });
    if !req.carriers.is_empty() {
        body["carrier_ids"] = json!(req.carriers);
    }
    body
}

fn address(a: &Address) -> Value {
    let mut m = Map::new();
    let fields = [
        ("person_name", &a.person_name),
        ("company_name", &a.company_name),
        ("address_line1", &a.address_line1),
        ("address_line2", &a.address_line2),
        ("city", &a.city),
        ("postal_code", &a.postal_code),
        ("state_code", &a.state_code),
        ("phone_number", &a.phone_number),
        ("email", &a.email),
    ];
    for (name, value) in fields {
        if let Some(v) = non_blank(value.as_deref()) {
            m.insert(name.to_owned(), Value::from(v));
        }
    }
    m.insert("country_code".into(), Value::from(a.country_code.as_str()));
    Value::Object(m)
}

fn parcel(p: &Parcel) -> Value {
    let mut v = json!({"weight": p.weight_kg, "weight_unit": "KG"});
    if let (Some(l), Some(w), Some(h)) = (p.length_cm, p.width_cm, p.height_cm) {
        v["length"] = json!(l);
        v["width"] = json!(w);
        v["height"] = json!(h);
        v["dimension_unit"] = json!("CM");
    }
    if let Some(r) = non_blank(p.reference.as_deref()) {
        v["reference_number"] = json!(r);
    }
    v
}

/// A shipment, as Karrio answers it (the fields the port needs).
#[derive(Debug, Deserialize)]
pub(crate) struct ShipmentWire {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    carrier_id: Option<String>,
    #[serde(default)]
    carrier_name: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    tracker_id: Option<String>,
    #[serde(default)]
    selected_rate: Option<RateWire>,
    #[serde(default)]
    selected_rate_id: Option<String>,
    #[serde(default, deserialize_with = "list")]
    rates: Vec<RateWire>,
    #[serde(default)]
    label_type: Option<String>,
    #[serde(default)]
    label_url: Option<String>,
    #[serde(default, deserialize_with = "list")]
    shipping_documents: Vec<DocumentWire>,
}

/// One rate of a shipment.
#[derive(Debug, Deserialize)]
pub(crate) struct RateWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    carrier_id: Option<String>,
    #[serde(default)]
    carrier_name: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    total_charge: Option<Value>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    transit_days: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DocumentWire {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    base64: Option<String>,
}

/// A page of `GET /v1/shipments`.
#[derive(Debug, Deserialize)]
pub(crate) struct PageWire {
    #[serde(default, deserialize_with = "list")]
    results: Vec<ShipmentWire>,
    #[serde(default)]
    next: Option<Value>,
}

/// Karrio's error bodies: `messages` (a carrier's) or `errors` (the API's).
#[derive(Debug, Default, Deserialize)]
struct ErrorsWire {
    #[serde(default, deserialize_with = "list")]
    messages: Vec<MessageWire>,
    #[serde(default, deserialize_with = "list")]
    errors: Vec<MessageWire>,
}

#[derive(Debug, Deserialize)]
struct MessageWire {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

/// `null` reads as an empty list.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A 2xx answer's body as `T`; a body that is not one is `karrio.bad_answer`.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    status: u16,
    body: &[u8],
) -> Result<T, PortError> {
    serde_json::from_slice(body).map_err(|e| PortError {
        status: Some(status),
        ..PortError::new(
            FailureKind::Permanent,
            "karrio.bad_answer",
            format!("Karrio answered {status} with a body this client cannot read: {e}"),
        )
    })
}

/// The shipments whose reference is exactly `reference` (Karrio's filter matches
/// substrings, case-insensitively).
pub(crate) fn exact(reference: &str, results: Vec<ShipmentWire>) -> Vec<ShipmentWire> {
    results
        .into_iter()
        .filter(|s| s.reference.as_deref() == Some(reference))
        .collect()
}

/// A shipment's state, as far as a booking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Draft,
    Cancelled,
    /// `created` (label bought) or any later status a tracker moved it to.
    Bought,
}

pub(crate) fn status_of(s: &ShipmentWire) -> Status {
    match s.status.as_deref().unwrap_or("draft") {
        "draft" => Status::Draft,
        "cancelled" => Status::Cancelled,
        _ => Status::Bought,
    }
}

/// What `find` returns, before a bought one's label is fetched.
#[derive(Debug)]
pub(crate) enum Choice {
    Booked(ShipmentWire),
    Draft(ShipmentWire),
    Cancelled(String),
    Nothing,
}

/// Among the shipments of one reference (newest first, as Karrio lists them): a bought
/// one, else the newest draft, else a cancelled one.
pub(crate) fn choose(shipments: Vec<ShipmentWire>) -> Choice {
    let mut draft = None;
    let mut cancelled = None;
    for s in shipments {
        match status_of(&s) {
            Status::Bought => return Choice::Booked(s),
            Status::Draft => {
                draft.get_or_insert(s);
            }
            Status::Cancelled => {
                cancelled.get_or_insert(s.id);
            }
        }
    }
    match (draft, cancelled) {
        (Some(d), _) => Choice::Draft(d),
        (None, Some(id)) => Choice::Cancelled(id),
        (None, None) => Choice::Nothing,
    }
}

/// A draft shipment's rates as quotes.
pub(crate) fn draft(s: ShipmentWire) -> Draft {
    Draft {
        quotes: s.rates.iter().filter_map(quote).collect(),
        booking_id: s.id,
    }
}

fn quote(r: &RateWire) -> Option<Quote> {
    Some(Quote {
        quote_id: non_blank(r.id.as_deref())?.to_owned(),
        carrier: r.carrier_id.clone().unwrap_or_default(),
        carrier_name: r.carrier_name.clone().unwrap_or_default(),
        service: r.service.clone().unwrap_or_default(),
        amount: r
            .total_charge
            .as_ref()
            .and_then(decimal)
            .unwrap_or_default(),
        currency: r.currency.clone().unwrap_or_default(),
        transit_days: r
            .transit_days
            .as_ref()
            .and_then(Value::as_u64)
            .and_then(|d| u32::try_from(d).ok()),
    })
}

/// A bought shipment as a booking; its label when the answer carries the bytes.
pub(crate) fn booked(s: &ShipmentWire) -> Result<Booked, PortError> {
    let bad = |what: &str| {
        PortError::new(
            FailureKind::Permanent,
            "karrio.bad_answer",
            format!("shipment {} is bought but has no {what}", s.id),
        )
    };
    let tracking_number = non_blank(s.tracking_number.as_deref())
        .ok_or_else(|| bad("tracking_number"))?
        .to_owned();
    let rate = s.selected_rate.as_ref().or_else(|| {
        s.rates
            .iter()
            .find(|r| r.id.is_some() && r.id == s.selected_rate_id)
    });
    let pick = |top: &Option<String>, of_rate: fn(&RateWire) -> &Option<String>| {
        non_blank(top.as_deref())
            .or_else(|| rate.and_then(|r| non_blank(of_rate(r).as_deref())))
            .unwrap_or_default()
            .to_owned()
    };
    let document = s
        .shipping_documents
        .iter()
        .find(|d| d.category.as_deref().is_none_or(|c| c == "label"));
    let label = match document.and_then(|d| non_blank(d.base64.as_deref())) {
        Some(b64) => Some(Label {
            format: label_format(s, document),
            bytes: base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(&format!("readable label ({e})")))?,
        }),
        None => None,
    };
    Ok(Booked {
        booking_id: s.id.clone(),
        carrier: pick(&s.carrier_id, |r| &r.carrier_id),
        carrier_name: pick(&s.carrier_name, |r| &r.carrier_name),
        service: pick(&s.service, |r| &r.service),
        tracking_number,
        amount: rate
            .and_then(|r| r.total_charge.as_ref())
            .and_then(decimal)
            .unwrap_or_default(),
        currency: rate.and_then(|r| r.currency.clone()).unwrap_or_default(),
        tracker_id: non_blank(s.tracker_id.as_deref()).map(str::to_owned),
        label,
    })
}

fn label_format(s: &ShipmentWire, document: Option<&DocumentWire>) -> String {
    document
        .and_then(|d| non_blank(d.format.as_deref()))
        .or_else(|| non_blank(s.label_type.as_deref()))
        .unwrap_or("PDF")
        .to_ascii_uppercase()
}

/// An amount as a decimal string: a JSON number as its shortest round-trip form (what
/// Karrio's Python serializer wrote), a string as sent.
pub(crate) fn decimal(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// A failed answer, classified. Karrio's own code and message are kept when it gave them.
pub(crate) fn classify(status: u16, body: &[u8]) -> PortError {
    let errors: ErrorsWire = serde_json::from_slice(body).unwrap_or_default();
    let all: Vec<&MessageWire> = errors.messages.iter().chain(&errors.errors).collect();
    let code = all
        .iter()
        .find_map(|m| non_blank(m.code.as_deref()))
        .map(str::to_owned);
    let text: Vec<String> = all
        .iter()
        .filter_map(|m| match &m.message {
            Some(Value::String(s)) => non_blank(Some(s)).map(str::to_owned),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        })
        .collect();
    let (kind, fallback) = match status {
        400 | 422 => (FailureKind::InvalidInput, "karrio.invalid_request"),
        401 | 403 => (FailureKind::Auth, "karrio.unauthorized"),
        408 | 429 => (FailureKind::Retryable, "karrio.busy"),
        500..=599 => (FailureKind::Retryable, "karrio.unavailable"),
        424 => (FailureKind::Permanent, "karrio.carrier_error"),
        _ => (FailureKind::Permanent, "karrio.http_error"),
    };
    let message = if text.is_empty() {
        format!("Karrio answered HTTP {status}")
    } else {
        text.join("; ")
    };
    PortError {
        status: Some(status),
        ..PortError::new(kind, code.unwrap_or_else(|| fallback.to_owned()), message)
    }
}

/// No answer at all: always worth another try.
fn transport(e: reqwest::Error) -> PortError {
    let (code, what) = if e.is_timeout() {
        ("karrio.timeout", "timed out")
    } else if e.is_connect() {
        ("karrio.unreachable", "cannot connect")
    } else {
        ("karrio.transport", "request failed")
    };
    PortError::new(
        FailureKind::Retryable,
        code,
        format!("Karrio {what}: {}", e.without_url()),
    )
}

/// The path (and query) of a URL Karrio gave, to be asked of the configured server: the
/// API key is never sent to another host.
fn path_of(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".to_owned(),
        },
        None if url.starts_with('/') => url.to_owned(),
        None => format!("/{url}"),
    }
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
#[path = "booking_tests.rs"]
mod booking_tests;
