//! How payloads and event bodies are stored, for every backend: each byte once where it
//! pays.
//!
//! A raw payload (the inbox row) is LZ4-compressed when it is at least [`PACK_FROM`]
//! bytes and that saves at least a fifth (encoding `lz4`), else kept as received (no
//! encoding). An event a mapping made from a payload repeats much of it (order lines,
//! addresses, notes), so its body is LZ4-compressed *with that payload as the
//! dictionary* (encoding `lz4+payload`): what the event repeats costs a back-reference,
//! not a second copy. Without a payload (events the hub makes) or with one larger than
//! [`DICT_MAX`], plain `lz4`; when
//! packing does not save a fifth, the JSON as is. All of it runs
//! on the request's thread, before the single writer sees the record.
//!
//! A packed event body is stored without its `sequence` attribute (the writer assigns
//! the number; the row holds it in its own column) and gets it back when read
//! ([`unpack_event`]). A body stored as JSON (no encoding: small events, and every row
//! written before packing existed) already carries it.

use crate::StoreError;
use waybill_model::CloudEvent;

/// Payloads and event bodies shorter than this are stored as they are.
pub const PACK_FROM: usize = 512;

/// Largest payload used as a dictionary. LZ4 reaches back 64 KiB at most, so a larger
/// payload (a CSV file of thousands of rows, a large interchange) would only cost hashing
/// its last 64 KiB for every one of its events; those events are packed alone.
pub const DICT_MAX: usize = 64 * 1024;

/// Encoding of an LZ4 block (size-prefixed) without dictionary.
pub const LZ4: &str = "lz4";
/// Encoding of an LZ4 block (size-prefixed) whose dictionary is the raw payload of the
/// event's inbox row.
pub const LZ4_PAYLOAD: &str = "lz4+payload";

/// Whether `packed` is worth storing instead of `len` bytes: it saves at least a fifth.
fn pays(packed: usize, len: usize) -> bool {
    packed * 5 <= len * 4
}

/// The raw payload as stored: `(Some(packed), Some("lz4"))`, or `(None, None)` to store
/// it as received.
pub fn pack_payload(body: &[u8]) -> (Option<Vec<u8>>, Option<&'static str>) {
    if body.len() < PACK_FROM {
        return (None, None);
    }
    let packed = lz4_flex::compress_prepend_size(body);
    if pays(packed.len(), body.len()) {
        (Some(packed), Some(LZ4))
    } else {
        (None, None)
    }
}

/// The raw payload from its stored form.
pub fn unpack_payload(stored: Vec<u8>, encoding: Option<&str>) -> Result<Vec<u8>, StoreError> {
    match encoding {
        None => Ok(stored),
        Some(LZ4) => lz4_flex::decompress_size_prepended(&stored)
            .map_err(|e| StoreError::Corrupt(format!("inbox body: {e}"))),
        Some(other) => Err(StoreError::Corrupt(format!(
            "inbox body in unknown encoding `{other}`"
        ))),
    }
}

/// An event body ready for the writer.
#[derive(Debug, Clone)]
pub enum EventBody {
    /// The serialized event without `sequence`; the writer adds it and stores JSON.
    Json(String),
    /// The serialized event without `sequence`, compressed; stored as is.
    Packed {
        /// The stored bytes.
        bytes: Vec<u8>,
        /// [`LZ4`] or [`LZ4_PAYLOAD`].
        encoding: &'static str,
    },
}

/// Packs a serialized event (`json`, without `sequence`) made from `payload` (empty:
/// none).
pub fn pack_event(json: String, payload: &[u8]) -> EventBody {
    if json.len() < PACK_FROM {
        return EventBody::Json(json);
    }
    // One compression: a dictionary only adds places to copy from.
    let (bytes, encoding) = if payload.is_empty() || payload.len() > DICT_MAX {
        (lz4_flex::compress_prepend_size(json.as_bytes()), LZ4)
    } else {
        (
            lz4_flex::block::compress_prepend_size_with_dict(json.as_bytes(), payload),
            LZ4_PAYLOAD,
        )
    };
    if pays(bytes.len(), json.len()) {
        EventBody::Packed { bytes, encoding }
    } else {
        EventBody::Json(json)
    }
}

/// The stored body: the serialized event with the `sequence` attribute added (a
/// serialized object ends with `}`).
pub fn with_sequence(json: &str, seq: i64) -> String {
    let body = json.strip_suffix('}').unwrap_or(json);
    format!(
        "{body},\"sequence\":\"{}\"}}",
        CloudEvent::format_sequence(seq)
    )
}

/// An event's JSON (with `sequence`) from its stored form. `seq` is the row's sequence
/// number; `payload` gives the raw payload of its inbox row, asked for only for
/// [`LZ4_PAYLOAD`].
pub fn unpack_event<P: AsRef<[u8]>>(
    stored: Vec<u8>,
    encoding: Option<&str>,
    seq: i64,
    payload: impl FnOnce() -> Result<P, StoreError>,
) -> Result<String, StoreError> {
    let json = match encoding {
        None => {
            return String::from_utf8(stored)
                .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))
        }
        Some(LZ4) => lz4_flex::decompress_size_prepended(&stored)
            .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?,
        Some(LZ4_PAYLOAD) => {
            let dict = payload()?;
            lz4_flex::block::decompress_size_prepended_with_dict(&stored, dict.as_ref())
                .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?
        }
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "event body in unknown encoding `{other}`"
            )))
        }
    };
    let json =
        String::from_utf8(json).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    Ok(with_sequence(&json, seq))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn payload() -> Vec<u8> {
        let lines: Vec<String> = (0..8)
            .map(|l| format!(r#"{{"line":{l},"sku":"SKU-{l:05}","description":"Stainless steel shelf bracket, 300 mm, pack of 4","ordered":4}}"#))
            .collect();
        format!(r#"{{"id":"e-1","lines":[{}]}}"#, lines.join(",")).into_bytes()
    }

    /// An event repeating its payload's lines costs far less with the payload as the
    /// dictionary than alone, and reads back with its sequence number.
    #[test]
    fn an_event_repeating_its_payload_is_stored_as_a_reference_to_it() {
        let raw = payload();
        let lines = &raw[raw.iter().position(|b| *b == b'[').unwrap()..raw.len() - 1];
        let json = format!(
            r#"{{"specversion":"1.0","id":"x","data":{{"lines":{}}}}}"#,
            String::from_utf8_lossy(lines)
        );
        let alone = lz4_flex::compress_prepend_size(json.as_bytes()).len();
        let EventBody::Packed { bytes, encoding } = pack_event(json.clone(), &raw) else {
            panic!("not packed");
        };
        assert_eq!(encoding, LZ4_PAYLOAD);
        assert!(
            bytes.len() * 4 < alone,
            "{} with the payload, {alone} alone, {} as JSON",
            bytes.len(),
            json.len()
        );
        let back = unpack_event(bytes, Some(encoding), 7, || Ok(raw.clone())).unwrap();
        assert_eq!(back, with_sequence(&json, 7));
        let v: serde_json::Value = serde_json::from_str(&back).unwrap();
        assert_eq!(v["sequence"], CloudEvent::format_sequence(7));
    }

    /// A payload beyond LZ4's reach is not used as a dictionary: its events are packed
    /// alone and read back without it.
    #[test]
    fn events_of_a_payload_larger_than_the_window_are_packed_alone() {
        let big = vec![b'x'; DICT_MAX + 1];
        let json = format!(r#"{{"a":"{}"}}"#, "y".repeat(2000));
        let EventBody::Packed { bytes, encoding } = pack_event(json.clone(), &big) else {
            panic!("not packed");
        };
        assert_eq!(encoding, LZ4);
        let back = unpack_event(
            bytes,
            Some(encoding),
            3,
            || -> Result<Vec<u8>, StoreError> { panic!("the payload is not read") },
        )
        .unwrap();
        assert_eq!(back, with_sequence(&json, 3));
    }

    #[test]
    fn small_or_incompressible_events_stay_json() {
        let small = r#"{"id":"x"}"#.to_string();
        assert!(matches!(pack_event(small.clone(), b""), EventBody::Json(j) if j == small));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: String = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + ((x >> 32) % 90) as u8)
            })
            .collect();
        let json = format!(r#"{{"n":"{noise}"}}"#);
        assert!(matches!(pack_event(json, b"{}"), EventBody::Json(_)));
    }

    #[test]
    fn a_body_in_an_unknown_encoding_or_damaged_is_an_error() {
        assert!(unpack_event(vec![1, 2, 3], Some("zz"), 1, || Ok(Vec::<u8>::new())).is_err());
        assert!(unpack_event(vec![200, 0, 0, 0, 0xF0], Some(LZ4), 1, || Ok(
            Vec::<u8>::new()
        ))
        .is_err());
        assert!(unpack_payload(vec![200, 0, 0, 0, 0xF0], Some(LZ4)).is_err());
    }

    proptest! {
        /// Whatever the event and the payload, the stored form reads back as the event
        /// with its sequence.
        #[test]
        fn packing_round_trips(json in "\\{\"a\":\"[ -~]{0,3000}\"\\}", raw in proptest::collection::vec(any::<u8>(), 0..3000), seq in 1i64..1_000_000) {
            let back = match pack_event(json.clone(), &raw) {
                EventBody::Json(j) => with_sequence(&j, seq),
                EventBody::Packed { bytes, encoding } => {
                    unpack_event(bytes, Some(encoding), seq, || Ok(raw.clone())).unwrap()
                }
            };
            prop_assert_eq!(back, with_sequence(&json, seq));
        }
    }
}
