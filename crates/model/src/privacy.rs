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
    /// The keys, lower case, grouped by their length in bytes (`by_len[n]` holds the keys
    /// of n bytes): a key of a payload is compared only with the few of its length,
    /// which is most of the cost of classifying and masking an event.
    by_len: Vec<Vec<Box<str>>>,
}

impl Default for Personal {
    fn default() -> Self {
        Personal::with(std::iter::empty::<&str>())
    }
}

impl Personal {
    /// The default keys and `extra` ones.
    pub fn with<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Self {
        let keys: BTreeSet<String> = DEFAULT_PERSONAL_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .chain(extra.into_iter().map(|k| k.as_ref().trim().to_lowercase()))
            .filter(|k| !k.is_empty())
            .collect();
        let mut by_len: Vec<Vec<Box<str>>> = Vec::new();
        for k in keys {
            if by_len.len() <= k.len() {
                by_len.resize_with(k.len() + 1, Vec::new);
            }
            by_len[k.len()].push(k.into_boxed_str());
        }
        Personal { by_len }
    }

    /// Whether `key` names personal data.
    pub fn is_personal(&self, key: &str) -> bool {
        // Keys are nearly always lower case already: look them up without allocating.
        if key.bytes().any(|b| b.is_ascii_uppercase()) || !key.is_ascii() {
            self.lookup(&key.to_lowercase())
        } else {
            self.lookup(key)
        }
    }

    fn lookup(&self, lower: &str) -> bool {
        self.by_len
            .get(lower.len())
            .is_some_and(|keys| keys.iter().any(|k| **k == *lower))
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

    /// An event's JSON text with the personal values of its top-level `data` member
    /// masked as [`Personal::mask`] masks them, every other byte copied as it is: the
    /// text is scanned, never parsed into values and written again, which made masking
    /// the costliest step of delivering an event with personal data. `None` when `event`
    /// is not a JSON object as far as the scan can tell.
    pub fn mask_event_data(&self, event: &str) -> Option<String> {
        let mut scan = Scan {
            src: event,
            at: 0,
            out: String::with_capacity(event.len()),
            copied: 0,
            personal: self,
        };
        scan.event()?;
        let rest = event.get(scan.copied..)?;
        scan.out.push_str(rest);
        Some(scan.out)
    }
}

/// How [`Scan::value`] reads a value.
#[derive(Clone, Copy)]
enum Mode {
    /// The event: its `data` member is read as [`Mode::Data`], the rest copied.
    Event,
    /// Inside `data`: a personal key's value is masked, the others read the same way.
    Data,
    /// Copied as it is.
    Copy,
}

/// Deepest nesting [`Personal::mask_event_data`] follows (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// The scan behind [`Personal::mask_event_data`]: `at` is the next byte to read, and
/// `src[..copied]` has been written to `out`, masked where it had to be.
struct Scan<'a> {
    src: &'a str,
    at: usize,
    out: String,
    copied: usize,
    personal: &'a Personal,
}

impl<'a> Scan<'a> {
    fn peek(&mut self) -> Option<u8> {
        let text = self.src.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(self.at) {
            self.at += 1;
        }
        text.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// A string; its value, unescaped when it has escapes.
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let text = self.src.as_bytes();
        self.peek()?;
        let start = self.at;
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            match text.get(self.at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                _ => self.at += 1,
            }
        }
        self.at += 1;
        if escaped {
            let quoted = self.src.get(start..self.at)?;
            serde_json::from_str::<String>(quoted).ok().map(Into::into)
        } else {
            self.src.get(start + 1..self.at - 1).map(Into::into)
        }
    }

    /// The whole text: an object whose `data` member is masked.
    fn event(&mut self) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.value(0, Mode::Event)?;
        self.peek().map_or(Some(()), |_| None)
    }

    /// One value, read as `mode` says.
    fn value(&mut self, depth: usize, mode: Mode) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.at += 1;
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    let key = self.string()?;
                    let (inner, personal) = match mode {
                        Mode::Event if key == "data" => (Mode::Data, false),
                        Mode::Data if self.personal.is_personal(&key) => (Mode::Copy, true),
                        Mode::Data => (Mode::Data, false),
                        Mode::Event | Mode::Copy => (Mode::Copy, false),
                    };
                    self.eat(b':')?;
                    self.peek()?;
                    let start = self.at;
                    self.value(depth + 1, inner)?;
                    if personal && self.src.get(start..self.at)? != "null" {
                        self.out.push_str(self.src.get(self.copied..start)?);
                        self.out.push('"');
                        self.out.push_str(MASK);
                        self.out.push('"');
                        self.copied = self.at;
                    }
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1, mode)?;
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            b'"' => self.string().map(drop),
            _ => {
                let text = self.src.as_bytes();
                let start = self.at;
                while let Some(b) = text.get(self.at) {
                    if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
                        break;
                    }
                    self.at += 1;
                }
                let word = self.src.get(start..self.at)?;
                let scalar = matches!(word, "true" | "false" | "null")
                    || serde_json::from_str::<serde_json::Number>(word).is_ok();
                scalar.then_some(())
            }
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

        /// Masking an event's text gives what parsing it, masking its `data` and writing
        /// it again gives, in compact and in pretty JSON, with escaped keys; members
        /// other than `data` are left as they are.
        #[test]
        fn masking_the_text_masks_as_the_values_do(
            data in json_value(),
            other in json_value(),
            pretty in any::<bool>(),
        ) {
            let p = Personal::with(["Loyalty_No"]);
            let event = json!({"id": "e-1", "data": data, "other": other, "specversion": "1.0"});
            let text = if pretty {
                serde_json::to_string_pretty(&event).unwrap()
            } else {
                event.to_string()
            };
            let masked = p.mask_event_data(&text).unwrap();
            let mut expected = event.clone();
            p.mask(expected.get_mut("data").unwrap());
            prop_assert_eq!(serde_json::from_str::<Value>(&masked).unwrap(), expected);
        }

        /// Any text: no panic, and a masked answer only for JSON that parses.
        #[test]
        fn masking_any_text_answers_only_for_json(text in "[{}\\[\\],:\" a-z0-9\\\\.-]{0,40}") {
            let p = Personal::default();
            if let Some(masked) = p.mask_event_data(&text) {
                prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{} → {}", text, masked);
            }
        }
    }

    #[test]
    fn masking_the_text_copies_what_it_does_not_mask() {
        let p = Personal::default();
        let text = r#"{"id":"e-1","data":{"lines":[{"sku":"A","ship_to":{"street":"1 Main St"}}],"Email":"a@b.c","phone":null,"n":1.5e3,"ok":true,"sa\u006c":"x","\u0073treet":"Hidden"},"email":"kept outside data"}"#;
        assert_eq!(
            p.mask_event_data(text).unwrap(),
            r#"{"id":"e-1","data":{"lines":[{"sku":"A","ship_to":"***"}],"Email":"***","phone":null,"n":1.5e3,"ok":true,"sa\u006c":"x","\u0073treet":"***"},"email":"kept outside data"}"#
        );
        for bad in [
            r#"{"data":{"a":tru}}"#,
            r#"{"data":{"a":1}"#,
            r#"[1]"#,
            r#"{"data":1} x"#,
            "",
        ] {
            assert_eq!(p.mask_event_data(bad), None, "{bad}");
        }
        let deep = format!(r#"{{"data":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(p.mask_event_data(&deep), None);
    }
}
