//! Turns serde's `line:column` of a data error (wrong type, bad enum) into a JSON path such
//! as `result.tracking_details[3].datetime`, so that a rejected payload says where it is
//! wrong in the partner's own terms.
//!
//! It scans the (already syntactically valid) body up to the error position, keeping a
//! stack of the objects and arrays it is inside. serde reports the position just after
//! the offending value, so the innermost open key or index is the value's path; after a
//! closing brace (e.g. `missing field`), the path is that object's.

/// One level of nesting while scanning.
enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The JSON path of the value that ends at serde's 1-based `line`/`column` in `body`;
/// `$` for the document itself.
pub fn path_at(body: &[u8], line: usize, column: usize) -> String {
    let end = byte_offset(body, line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match body[i] {
            // A container opening at the error position is itself the offending value.
            b'{' if i + 1 < end => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' if i + 1 < end => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let (text, next) = read_string(body, i + 1);
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut() {
                    if *expect_key {
                        *key = Some(text);
                        *expect_key = false;
                    }
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    render(&stack)
}

/// Index just past the byte at `line`/`column` (both 1-based, columns in bytes).
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match body[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start += p + 1,
            None => return body.len(),
        }
    }
    (start + column).min(body.len())
}

/// Reads a string body starting after its opening quote; returns the raw (still escaped)
/// text and the index after the closing quote.
fn read_string(body: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => break,
            _ => i += 1,
        }
    }
    let end = i.min(body.len());
    let text = String::from_utf8_lossy(&body[start..end]).into_owned();
    (text, end + 1)
}

fn render(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                let plain = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    out.push_str(&format!("[\"{k}\"]"));
                }
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => out.push_str(&format!("[{index}]")),
        }
    }
    if out.is_empty() {
        out.push('$');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        result: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        details: Vec<Detail>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Detail {
        datetime: String,
    }

    fn path_of_error(body: &str) -> String {
        let e = serde_json::from_str::<Outer>(body).expect_err("must fail");
        path_at(body.as_bytes(), e.line(), e.column())
    }

    #[test]
    fn a_wrong_type_is_named_by_its_path() {
        let body = r#"{"result": {"details": [{"datetime": "x"}, {"datetime": 7}]}}"#;
        assert_eq!(path_of_error(body), "result.details[1].datetime");
    }

    #[test]
    fn paths_survive_newlines_escapes_and_odd_keys() {
        let body = "{\"a\\\"b\": 1,\n \"result\": {\n \"details\": [\n {\"datetime\": [] }]}}";
        assert_eq!(path_of_error(body), "result.details[0].datetime");
        assert_eq!(path_at(br#"{"a b": [1, 2]}"#, 1, 13), "[\"a b\"][1]");
    }

    #[test]
    fn a_missing_field_names_its_object() {
        let body = r#"{"result": {"details": [{"datetime": "x"}, {"other": 1}]}}"#;
        assert_eq!(path_of_error(body), "result.details[1]");
        assert_eq!(path_at(b"[]", 9, 9), "$");
    }
}
