//! Parties: the N1 loop (N1 01 entity code, 02 name, 03 id qualifier, 04 id; N4 01 city,
//! 02 state or province, 03 postal code, 04 country) as the 856 and the 210 carry it.
//! N2 (more name) and N3 (street lines) are not read: they stay in the raw payload, and a
//! consignee's street can be a person's address. Layout: kputnam/stupidedi 004010
//! `segment_defs/{N1,N4}.rb`; entity codes from its element 98 list and Stedi's
//! `/element/98` page.

use super::error::X12Error;
use super::measure::{owned, put};
use super::wire::Segment;
use serde_json::{Map, Value};

/// One N1 loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// N1-01 entity identifier code (`BT` bill-to, `SH` shipper, `CN` consignee, …).
    pub code: String,
    /// N1-02 name.
    pub name: Option<String>,
    /// N1-03 identification code qualifier.
    pub id_qualifier: Option<String>,
    /// N1-04 identification code.
    pub id: Option<String>,
    /// N4-01 city.
    pub city: Option<String>,
    /// N4-02 state or province code.
    pub state: Option<String>,
    /// N4-03 postal code.
    pub postal_code: Option<String>,
    /// N4-04 country code.
    pub country: Option<String>,
}

impl Party {
    /// Reads an N1 segment.
    pub fn from_n1(seg: &Segment) -> Result<Party, X12Error> {
        Ok(Party {
            code: seg.require(1)?.to_owned(),
            name: owned(seg, 2),
            id_qualifier: owned(seg, 3),
            id: owned(seg, 4),
            city: None,
            state: None,
            postal_code: None,
            country: None,
        })
    }

    /// Adds the place of an N4 segment.
    pub fn add_n4(&mut self, seg: &Segment) {
        self.city = owned(seg, 1);
        self.state = owned(seg, 2);
        self.postal_code = owned(seg, 3);
        self.country = owned(seg, 4);
    }

    /// The `data.parties` name of the party's role: `bill_to` (BT), `shipper` (SH),
    /// `consignee` (CN), `ship_from` (SF), `ship_to` (ST), `buyer` (BY), `supplier` (SU),
    /// `vendor` (VN); any other code `n1_<code>`.
    pub fn role(&self) -> String {
        match self.code.as_str() {
            "BT" => "bill_to".into(),
            "SH" => "shipper".into(),
            "CN" => "consignee".into(),
            "SF" => "ship_from".into(),
            "ST" => "ship_to".into(),
            "BY" => "buyer".into(),
            "SU" => "supplier".into(),
            "VN" => "vendor".into(),
            other => format!("n1_{}", other.to_ascii_lowercase()),
        }
    }

    /// `{code, name, id_qualifier, id, city, state, postal_code, country}` (absent ones
    /// omitted).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), self.code.clone().into());
        put(&mut m, "name", self.name.as_deref());
        put(&mut m, "id_qualifier", self.id_qualifier.as_deref());
        put(&mut m, "id", self.id.as_deref());
        put(&mut m, "city", self.city.as_deref());
        put(&mut m, "state", self.state.as_deref());
        put(&mut m, "postal_code", self.postal_code.as_deref());
        put(&mut m, "country", self.country.as_deref());
        Value::Object(m)
    }
}

/// `data.parties`: each party under its [`Party::role`] (`_2`, `_3`… for a role that
/// comes again); `None` when there is none.
pub fn to_json(parties: &[Party]) -> Option<Value> {
    if parties.is_empty() {
        return None;
    }
    let mut m = Map::new();
    for p in parties {
        let role = p.role();
        let mut name = role.clone();
        let mut n = 1;
        while m.contains_key(&name) {
            n += 1;
            name = format!("{role}_{n}");
        }
        m.insert(name, p.to_json());
    }
    Some(Value::Object(m))
}
