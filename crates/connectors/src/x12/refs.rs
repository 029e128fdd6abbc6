//! Reference numbers (L11, REF, N9: a qualifier and a value) and how they become the
//! `refs` of a canonical draft.

use super::wire::Segment;
use std::collections::BTreeMap;

/// One reference number as sent: qualifier (element 128) and value (element 127).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Reference identification qualifier, e.g. `BM` (bill of lading).
    pub qualifier: String,
    /// The reference itself.
    pub value: String,
}

impl Reference {
    /// Reads a reference segment whose value and qualifier sit at the given positions
    /// (L11: 1 and 2; REF and N9: 2 and 1). `None` when the value is absent.
    pub fn read(seg: &Segment, value_pos: usize, qualifier_pos: usize) -> Option<Reference> {
        Some(Reference {
            value: seg.get(value_pos)?.to_owned(),
            qualifier: seg.get(qualifier_pos).unwrap_or("").to_owned(),
        })
    }
}

/// The `refs` key for a reference qualifier: common ones by name, others `ref_<qualifier>`.
///
/// Names follow X12 element 128: `BM` bill of lading → `bol`, `CN` carrier's reference
/// (PRO/invoice) → `pro`, `PO` → `po`, `2I` tracking number → `tracking`, `SI` shipper's
/// identifying number → `sid`, `BN` booking → `booking`, `CR` customer reference →
/// `customer_ref`, `AW` air waybill → `awb`, `MB` master bill of lading → `mbol`.
pub fn ref_name(qualifier: &str) -> String {
    match qualifier {
        "BM" => "bol".into(),
        "CN" => "pro".into(),
        "PO" => "po".into(),
        "2I" => "tracking".into(),
        "SI" => "sid".into(),
        "BN" => "booking".into(),
        "CR" => "customer_ref".into(),
        "AW" => "awb".into(),
        "MB" => "mbol".into(),
        "" => "ref".into(),
        q => format!("ref_{}", q.to_ascii_lowercase()),
    }
}

/// Builds a draft's `refs`: the first value under a name keeps the name, further
/// different values get `_2`, `_3`, … so nothing is lost; repeated equal values are kept once.
#[derive(Debug, Default, Clone)]
pub struct Refs(pub BTreeMap<String, String>);

impl Refs {
    /// Adds `value` under `name` (see the type docs for duplicates).
    pub fn add(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut n = 1;
        loop {
            let key = if n == 1 {
                name.to_owned()
            } else {
                format!("{name}_{n}")
            };
            match self.0.get(&key) {
                Some(v) if v == value => return,
                Some(_) => n += 1,
                None => {
                    self.0.insert(key, value.to_owned());
                    return;
                }
            }
        }
    }

    /// Adds every reference under its [`ref_name`].
    pub fn add_all(&mut self, refs: &[Reference]) {
        for r in refs {
            self.add(&ref_name(&r.qualifier), &r.value);
        }
    }
}
