//! A direct evaluator for the plain shape most mappings have: an object built from paths
//! into the payload, string literals, `$source` / `$headers`, `+`, `//` and `|`.
//!
//! jaq runs every program through boxed iterators (an object of ten keys is built as the
//! sum of ten one-key objects, each behind its own iterator), which made the jq run the
//! largest single cost of an ingest. A program that is nothing but the shape above has
//! exactly one output and no generators, so it can be evaluated by walking its syntax
//! tree once. Every operation is jaq's own (`ValT::index` for a path step, `Val + Val`
//! for `+`, jaq's truthiness for `//`), so the values are jaq's values; anything the
//! evaluator does not cover — a construct at compile time, or an error or a value it
//! does not handle at run time — is left to jaq, which then gives its own answer, error
//! messages included. The property test in `tests.rs` compares both on random programs
//! of this shape and random payloads.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::load::{Lexer, Parser};
use jaq_core::ops::Math;
use jaq_core::path::{Opt, Part};
use jaq_core::ValT;
use jaq_json::{Map, Val};

/// A program of the plain shape, ready to run.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// `.`
    Input,
    /// `null`, `true`, `false`, `"text"`.
    Const(Val),
    /// `$source`.
    Source,
    /// `$headers`.
    Headers,
    /// `f.a."b"["c"]`: each step indexes with a string.
    Path(Box<Plan>, Vec<Val>),
    /// `{a: f, "b": g, c}`, in the order written (a repeated key keeps its first place
    /// and its last value, as jaq's object sum does).
    Obj(Vec<(Val, Plan)>),
    /// `f | g`.
    Pipe(Box<Plan>, Box<Plan>),
    /// `f + g`.
    Add(Box<Plan>, Box<Plan>),
    /// `f // g`.
    Alt(Box<Plan>, Box<Plan>),
}

/// The evaluator cannot give jaq's answer itself; jaq is to run the program.
#[derive(Debug)]
pub(crate) struct Fallback;

impl Plan {
    /// The plan of a program, when the whole program has the plain shape.
    pub(crate) fn of(code: &str) -> Option<Plan> {
        let tokens = Lexer::new(code).lex().ok()?;
        let term = Parser::new(&tokens).parse(|p| p.term()).ok()?;
        Plan::from_term(&term)
    }

    fn from_term(t: &Term<&str>) -> Option<Plan> {
        Some(match t {
            Term::Id => Plan::Input,
            Term::Str(None, parts) => Plan::Const(Val::utf8_str(literal(parts)?.into_bytes())),
            // Without a `def` in the program (there is none in this shape) these names
            // are jaq's own definitions.
            Term::Call(name, args) if args.is_empty() => match *name {
                "null" => Plan::Const(Val::Null),
                "true" => Plan::Const(Val::Bool(true)),
                "false" => Plan::Const(Val::Bool(false)),
                _ => return None,
            },
            Term::Var(name) => match *name {
                "$source" => Plan::Source,
                "$headers" => Plan::Headers,
                _ => return None,
            },
            Term::Path(base, path) => {
                let mut keys = Vec::with_capacity(path.0.len());
                for (part, opt) in &path.0 {
                    match (part, opt) {
                        (Part::Index(Term::Str(None, parts)), Opt::Essential) => {
                            keys.push(Val::utf8_str(literal(parts)?.into_bytes()))
                        }
                        _ => return None,
                    }
                }
                let base = Plan::from_term(base)?;
                if keys.is_empty() {
                    base
                } else {
                    Plan::Path(Box::new(base), keys)
                }
            }
            Term::Obj(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let Term::Str(None, parts) = key else {
                        return None;
                    };
                    let name = literal(parts)?;
                    let k = Val::utf8_str(name.into_bytes());
                    let v = match value {
                        Some(v) => Plan::from_term(v)?,
                        // `{a}` is `{a: .a}`.
                        None => Plan::Path(Box::new(Plan::Input), vec![k.clone()]),
                    };
                    out.push((k, v));
                }
                Plan::Obj(out)
            }
            Term::BinOp(l, op, r) => {
                let (l, r) = (Box::new(Plan::from_term(l)?), Box::new(Plan::from_term(r)?));
                match op {
                    BinaryOp::Pipe(None) => Plan::Pipe(l, r),
                    BinaryOp::Math(Math::Add) => Plan::Add(l, r),
                    BinaryOp::Alt => Plan::Alt(l, r),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// Runs the plan on `input`; `headers` is only evaluated when the plan names it.
    pub(crate) fn run(
        &self,
        input: &Val,
        source: &Val,
        headers: &dyn Fn() -> Option<Val>,
    ) -> Result<Val, Fallback> {
        Ok(match self {
            Plan::Input => input.clone(),
            Plan::Const(v) => v.clone(),
            Plan::Source => source.clone(),
            Plan::Headers => headers().ok_or(Fallback)?,
            Plan::Path(base, keys) => {
                let mut v = base.run(input, source, headers)?;
                for k in keys {
                    v = v.index(k).map_err(|_| Fallback)?;
                }
                v
            }
            Plan::Obj(entries) => {
                let mut m = Map::with_capacity_and_hasher(entries.len(), Default::default());
                for (k, plan) in entries {
                    m.insert(k.clone(), plan.run(input, source, headers)?);
                }
                Val::obj(m)
            }
            Plan::Pipe(l, r) => {
                let mid = l.run(input, source, headers)?;
                r.run(&mid, source, headers)?
            }
            Plan::Add(l, r) => {
                let a = l.run(input, source, headers)?;
                let b = r.run(input, source, headers)?;
                (a + b).map_err(|_| Fallback)?
            }
            Plan::Alt(l, r) => {
                let a = l.run(input, source, headers)?;
                if a.as_bool() {
                    a
                } else {
                    r.run(input, source, headers)?
                }
            }
        })
    }
}

/// The text of a string literal without interpolation.
fn literal(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    let mut s = String::new();
    for p in parts {
        match p {
            StrPart::Str(t) => s.push_str(t),
            StrPart::Char(c) => s.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(s)
}
