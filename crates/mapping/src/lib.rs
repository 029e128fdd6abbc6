//! The jq mapping runtime: a partner payload goes in, canonical event drafts come out.
//!
//! Place in the flow: MAP. A source's `mapping` (a jq program in the configuration) is
//! compiled once at start-up and run on every accepted payload, so a new partner is
//! onboarded without a recompile.
//! Never does: I/O, or anything that depends on the time of day (mappings are pure: the
//! same payload always maps to the same drafts, which is what makes event ids stable).
//! Invariants: a failing mapping is an error value naming what went wrong, never a panic.
//!
//! Variables available to a mapping: `$headers` (request headers, lower-case names) and
//! `$source` (the configured source name).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler, Ctx, Native, Vars};
use jaq_json::Val;
use waybill_model::{Code, CodeClass, EventDraft};

mod native;

type Filter = jaq_core::compile::Filter<Native<data::JustLut<Val>>>;

/// Why a mapping could not be compiled or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The jq program does not compile.
    #[error("mapping does not compile: {0}")]
    Compile(String),
    /// The payload is not valid JSON.
    #[error("payload is not valid JSON: {0}")]
    Json(String),
    /// The jq program raised an error on this payload.
    #[error("mapping failed: {0}")]
    Runtime(String),
    /// The program produced no event.
    #[error("mapping produced no event")]
    Empty,
    /// An output is not a valid event draft.
    #[error("mapping output is not a valid event: {0}")]
    Output(String),
}

/// `mapping.compile`: a program does not compile (found by `check-config` and at start).
pub const COMPILE: Code = Code::new("mapping.compile", CodeClass::Config);
/// `mapping.bad_json`: the payload is not JSON (answered as `ingest.bad_json`).
pub const BAD_JSON: Code = Code::new("mapping.bad_json", CodeClass::BadRequest);
/// `mapping.runtime`: the program raised an error on this payload.
pub const RUNTIME: Code = Code::new("mapping.runtime", CodeClass::Unprocessable);
/// `mapping.empty`: no event.
pub const EMPTY: Code = Code::new("mapping.empty", CodeClass::Unprocessable);
/// `mapping.bad_output`: an output is not a valid event draft.
pub const BAD_OUTPUT: Code = Code::new("mapping.bad_output", CodeClass::Unprocessable);
/// Every code of this crate (docs/errors.md documents each).
pub const CODES: &[Code] = &[COMPILE, BAD_JSON, RUNTIME, EMPTY, BAD_OUTPUT];

impl MappingError {
    /// The failure code (see docs/errors.md).
    pub fn failure(&self) -> Code {
        match self {
            MappingError::Compile(_) => COMPILE,
            MappingError::Json(_) => BAD_JSON,
            MappingError::Runtime(_) => RUNTIME,
            MappingError::Empty => EMPTY,
            MappingError::Output(_) => BAD_OUTPUT,
        }
    }

    /// The failure code as written in answers and logs.
    pub fn code(&self) -> &'static str {
        self.failure().as_str()
    }
}

/// A compiled mapping.
pub struct Program {
    filter: Filter,
    /// Whether the program names `$headers` at all; when it does not, the headers are not
    /// converted for it (a variable can only be reached by its name).
    uses_headers: bool,
    /// The program evaluated directly, when it has the plain shape (see `native`).
    native: Option<native::Plan>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program")
    }
}

/// A parsed payload, ready to be mapped.
pub struct Payload(Val);

impl Payload {
    /// Parses strict JSON (no comments, no trailing data); errors give line and column.
    pub fn parse(bytes: &[u8]) -> Result<Payload, MappingError> {
        serde_json::from_slice::<Val>(bytes)
            .map(Payload)
            .map_err(|e| MappingError::Json(e.to_string()))
    }
}

impl Program {
    /// Compiles a jq program; the error names line and column of the first problem.
    pub fn compile(code: &str) -> Result<Program, MappingError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| MappingError::Compile(describe_load_errors(code, &errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(["$headers", "$source"])
            .compile(modules)
            .map_err(|errs| {
                let mut msgs = Vec::new();
                for (_file, es) in errs {
                    for (name, _undefined) in es {
                        msgs.push(format!(
                            "{} `{}`",
                            position(code, name),
                            name.trim().chars().take(40).collect::<String>()
                        ));
                    }
                }
                MappingError::Compile(format!("undefined: {}", msgs.join(", ")))
            })?;
        Ok(Program {
            filter,
            uses_headers: code.contains("$headers"),
            native: native::Plan::of(code),
        })
    }

    /// Whether the program is evaluated directly rather than by the jq interpreter (the
    /// answers are the same; see the `native` module).
    pub fn is_direct(&self) -> bool {
        self.native.is_some()
    }

    /// Whether the program names `$headers` (when it does not, callers need not pass them).
    pub fn uses_headers(&self) -> bool {
        self.uses_headers
    }

    /// Runs the program; every output must be an event draft or an array of them.
    pub fn run(
        &self,
        payload: &Payload,
        headers: &[(String, String)],
        source: &str,
    ) -> Result<Vec<EventDraft>, MappingError> {
        let mut drafts = Vec::new();
        for json in self.run_values(payload, headers, source)? {
            if json.is_null() {
                // A payload may carry nothing to map for some of its parts.
                continue;
            }
            let offset = drafts.len();
            let more = EventDraft::many_from_json(json).map_err(|mut e| {
                e.index += offset;
                MappingError::Output(e.to_string())
            })?;
            drafts.extend(more);
        }
        if drafts.is_empty() {
            return Err(MappingError::Empty);
        }
        Ok(drafts)
    }

    /// Runs the program and returns its outputs as JSON values.
    pub fn run_values(
        &self,
        payload: &Payload,
        headers: &[(String, String)],
        source: &str,
    ) -> Result<Vec<serde_json::Value>, MappingError> {
        let source = Val::from(source.to_owned());
        if let Some(plan) = &self.native {
            if let Ok(v) = plan.run(&payload.0, &source, &|| headers_to_val(headers).ok()) {
                return Ok(vec![to_json(&v, 0)?]);
            }
            // Anything the direct evaluation does not answer is jaq's to answer.
        }
        self.run_interpreted(payload, headers, source)
    }

    /// [`Program::run_values`] by the jq interpreter alone, never the direct evaluation:
    /// what tests and the fuzz target compare the direct evaluation with.
    pub fn run_values_interpreted(
        &self,
        payload: &Payload,
        headers: &[(String, String)],
        source: &str,
    ) -> Result<Vec<serde_json::Value>, MappingError> {
        self.run_interpreted(payload, headers, Val::from(source.to_owned()))
    }

    /// Runs the program with the jq interpreter.
    fn run_interpreted(
        &self,
        payload: &Payload,
        headers: &[(String, String)],
        source: Val,
    ) -> Result<Vec<serde_json::Value>, MappingError> {
        let hdrs = if self.uses_headers {
            headers_to_val(headers)?
        } else {
            Val::Null
        };
        let vars = Vars::new([hdrs, source]);
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, vars);
        let mut out = Vec::new();
        for v in self.filter.id.run((ctx, payload.0.clone())) {
            let v = jaq_core::unwrap_valr(v).map_err(|e| MappingError::Runtime(e.to_string()))?;
            out.push(to_json(&v, 0)?);
        }
        Ok(out)
    }
}

/// `$headers`: an object of the headers, names in lower case (a repeated name keeps its
/// last value).
fn headers_to_val(headers: &[(String, String)]) -> Result<Val, MappingError> {
    let hdrs: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::String(v.clone())))
        .collect();
    to_val(serde_json::Value::Object(hdrs))
}

fn to_val(v: serde_json::Value) -> Result<Val, MappingError> {
    serde_json::from_value::<Val>(v).map_err(|e| MappingError::Runtime(e.to_string()))
}

/// Most containers nested in an output: what serde_json reads back (stored event bodies
/// are parsed again when a timeline is read), so nothing is stored that cannot be read.
const MAX_OUTPUT_DEPTH: usize = 127;

/// A jq value as JSON, directly (no text in between), accepting exactly what printing it
/// and parsing the text as JSON accepted before: non-finite numbers, numbers out of
/// range, byte strings and non-string object keys are not JSON and are refused.
fn to_json(v: &Val, depth: usize) -> Result<serde_json::Value, MappingError> {
    use serde_json::Value;
    let not_json = |what: String| MappingError::Output(format!("not JSON: {what}"));
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => match n {
            jaq_json::Num::Int(i) => Value::from(*i as i64),
            jaq_json::Num::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => return Err(not_json(format!("the number {n}"))),
            },
            // Big integers and decimals as jq writes them, then read as JSON numbers.
            other => {
                let text = other.to_string();
                serde_json::from_str(&text).map_err(|e| not_json(format!("{text}: {e}")))?
            }
        },
        Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::BStr(_) => return Err(not_json("a byte string".into())),
        Val::Arr(_) | Val::Obj(_) if depth >= MAX_OUTPUT_DEPTH => {
            return Err(MappingError::Output(format!(
                "output nested deeper than {MAX_OUTPUT_DEPTH} levels"
            )))
        }
        Val::Arr(a) => Value::Array(
            a.iter()
                .map(|x| to_json(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Val::Obj(o) => {
            let mut m = serde_json::Map::with_capacity(o.len());
            for (k, x) in o.iter() {
                let Val::TStr(key) = k else {
                    return Err(not_json(format!("the object key {k}")));
                };
                m.insert(
                    String::from_utf8_lossy(key).into_owned(),
                    to_json(x, depth + 1)?,
                );
            }
            Value::Object(m)
        }
    })
}

/// 1-based line:column of `part` inside `code`, when `part` is a slice of it.
fn position(code: &str, part: &str) -> String {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at < start || at > start + code.len() {
        return "?".into();
    }
    let before = &code[..at - start];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}")
}

fn describe_load_errors<P>(code: &str, errs: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    let mut msgs = Vec::new();
    for (_file, err) in errs {
        match err {
            Error::Io(es) => msgs.extend(es.iter().map(|(p, m)| format!("{p}: {m}"))),
            Error::Lex(es) => msgs.extend(es.iter().map(|(expect, at)| {
                format!("{} expected {}", position(code, at), expect.as_str())
            })),
            Error::Parse(es) => msgs.extend(es.iter().map(|(expect, at)| {
                format!("{} expected {}", position(code, at), expect.as_str())
            })),
        }
    }
    msgs.join("; ")
}

#[cfg(test)]
mod tests;
