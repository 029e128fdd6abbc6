//! Personal data in events and payloads: which keys hold it, how an event is classified
//! (the CloudEvents `dataclassification` extension), and masking for readers without
//! the right to see it.
//!
//! A value is personal when its key (at any depth of a JSON document, compared without
//! case) is one of [`DEFAULT_PERSONAL_KEYS`] or a key configured in `[privacy]`: names
//! of people, addresses, phone numbers, e-mail addresses, signatures and proof-of-delivery
//! images. The whole value under such a key is personal (an `address` object with its
//! street, city and postcode).

use serde_json::Value;
use std::collections::BTreeSet;

/// What every hub treats as personal.
pub const DEFAULT_PERSONAL_KEYS: &[&str] = &[
    "recipient",
    "recipient_name",
    "consignee",
    "ship_to",
    "shipto",
    "customer",
    "customer_name",
    "partner",
    "partner_name",
    "partner_id",
    "contact",
    "contact_name",
    "attention",
    "address",
    "addresses",
    "street",
    "street2",
    "phone",
    "mobile",
    "email",
    "signature",
    "signed_by",
    "signer",
    "pod_image",
    "photo",
];

/// What stands in for a masked value.
pub const MASK: &str = "***";

/// The `dataclassification` of an event with personal data.
pub const CONFIDENTIAL: &str = "confidential";
/// The `dataclassification` of the others.
pub const INTERNAL: &str = "internal";

/// The keys a hub treats as personal.
#[derive(Debug, Clone)]
pub struct Personal {
    keys: BTreeSet<String>,
}

impl Default for Personal {
    fn default() -> Self {
        Personal::with(std::iter::empty::<&str>())
    }
}

impl Personal {
    /// The default keys and `extra` ones.
    pub fn with<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Self {
        let keys = DEFAULT_PERSONAL_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .chain(extra.into_iter().map(|k| k.as_ref().trim().to_lowercase()))
            .filter(|k| !k.is_empty())
            .collect();
        Personal { keys }
    }

    /// Whether `key` names personal data.
    pub fn is_personal(&self, key: &str) -> bool {
        // Keys are nearly always lower case already: look them up without allocating.
        if key.bytes().any(|b| b.is_ascii_uppercase()) || !key.is_ascii() {
            self.keys.contains(&key.to_lowercase())
        } else {
            self.keys.contains(key)
        }
    }

    /// Whether `v` holds personal data anywhere.
    pub fn holds(&self, v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| (self.is_personal(k) && !v.is_null()) || self.holds(v)),
            Value::Array(a) => a.iter().any(|v| self.holds(v)),
            _ => false,
        }
    }

    /// The classification of an event whose data is `data`.
    pub fn classify(&self, data: Option<&Value>) -> &'static str {
        if data.is_some_and(|d| self.holds(d)) {
            CONFIDENTIAL
        } else {
            INTERNAL
        }
    }

    /// Replaces every personal value in `v` by [`MASK`]; returns how many.
    pub fn mask(&self, v: &mut Value) -> usize {
        match v {
            Value::Object(m) => {
                let mut n = 0;
                for (k, v) in m.iter_mut() {
                    if self.is_personal(k) && !v.is_null() {
                        *v = Value::String(MASK.into());
                        n += 1;
                    } else {
                        n += self.mask(v);
                    }
                }
                n
            }
            Value::Array(a) => a.iter_mut().map(|v| self.mask(v)).sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nested_personal_values_are_masked_whole_and_the_rest_kept() {
        let p = Personal::with(["Loyalty_No"]);
        let mut v = json!({
            "status": "delivered",
            "pod": {"signed_by": "Zebulon Q", "at": "10:00"},
            "lines": [{"sku": "A-1", "ship_to": {"street": "1 Main St", "city": "Oslo"}}],
            "loyalty_no": "LX-99",
            "email": null
        });
        assert!(p.holds(&v));
        assert_eq!(p.classify(Some(&v)), CONFIDENTIAL);
        assert_eq!(p.mask(&mut v), 3);
        assert_eq!(v["pod"]["signed_by"], MASK);
        assert_eq!(v["pod"]["at"], "10:00");
        assert_eq!(v["lines"][0]["ship_to"], MASK);
        assert_eq!(v["lines"][0]["sku"], "A-1");
        assert_eq!(v["loyalty_no"], MASK);
        assert_eq!(v["email"], Value::Null, "nothing to hide in a null");
        assert!(!p.holds(&v) || v.to_string().contains(MASK));
        assert_eq!(p.classify(Some(&json!({"status": "x"}))), INTERNAL);
        assert_eq!(p.classify(None), INTERNAL);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("email".to_owned()),
                        Just("sku".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// After masking nothing personal is left, masking again changes nothing, and the
        /// classification of the masked value says so only through the mask.
        #[test]
        fn masking_leaves_no_personal_value(mut v in json_value()) {
            let p = Personal::default();
            p.mask(&mut v);
            let once = v.clone();
            p.mask(&mut v);
            prop_assert_eq!(&once, &v);
            fn check(p: &Personal, v: &Value) -> bool {
                match v {
                    Value::Object(m) => m.iter().all(|(k, v)| {
                        if p.is_personal(k) { v.is_null() || v == MASK } else { check(p, v) }
                    }),
                    Value::Array(a) => a.iter().all(|v| check(p, v)),
                    _ => true,
                }
            }
            prop_assert!(check(&p, &v));
        }
    }
}
