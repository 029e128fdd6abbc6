//! Every failure code of every crate, in one list: what docs/errors.md must document.

use waybill_model::Code;

/// Every code Waybill can raise, from every crate's own list.
pub fn all() -> Vec<Code> {
    let mut v = Vec::new();
    v.extend_from_slice(waybill_engine::codes::CODES);
    v.extend_from_slice(waybill_mapping::CODES);
    v.extend_from_slice(waybill_api::codes::CODES);
    v.extend(waybill_connectors::codes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use waybill_model::CodeClass;

    /// The rows of docs/errors.md's tables: code → (HTTP column, cause column).
    fn documented() -> BTreeMap<String, (String, String)> {
        let text = include_str!("../../../docs/errors.md");
        let mut rows = BTreeMap::new();
        for line in text.lines() {
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let Some(first) = cells.first() else { continue };
            let code = first.trim_start_matches('|').trim();
            let is_code = code.starts_with('`')
                && code.ends_with('`')
                && code.contains('.')
                && !code.contains(' ');
            if is_code && cells.len() >= 3 {
                let code = code.trim_matches('`').to_owned();
                let previous =
                    rows.insert(code.clone(), (cells[1].to_owned(), cells[2].to_owned()));
                assert!(previous.is_none(), "{code} is documented twice");
            }
        }
        rows
    }

    fn expected_column(class: CodeClass) -> &'static [&'static str] {
        match class {
            CodeClass::BadRequest => &["400"],
            CodeClass::Unauthenticated => &["401"],
            CodeClass::Forbidden => &["403"],
            CodeClass::NotFound => &["404"],
            CodeClass::Conflict => &["409"],
            CodeClass::TooLarge => &["413"],
            CodeClass::TooManyRequests => &["429"],
            CodeClass::Unprocessable => &["422", "422 or file"],
            CodeClass::Unavailable => &["503"],
            CodeClass::StorageFull => &["507"],
            CodeClass::File => &["file"],
            CodeClass::Config => &["—"],
            // Delivery failures are answered to no one: their tables give the kind.
            CodeClass::Delivery => &["retryable", "permanent", "auth", "invalid input", "depends"],
        }
    }

    #[test]
    fn every_code_is_documented_with_the_status_its_class_gives() {
        let docs = documented();
        let codes = all();
        for code in &codes {
            let (http, cause) = docs
                .get(code.as_str())
                .unwrap_or_else(|| panic!("{code} is not in docs/errors.md"));
            let ok = expected_column(code.class())
                .iter()
                .any(|want| http.as_str() == *want || (code.class() == CodeClass::Delivery && http.starts_with(want)))
                // a code that exists but is never raised as such
                || (http == "—" && cause.starts_with("Defined but"));
            assert!(
                ok,
                "{code}: docs/errors.md says `{http}`, its class is {:?}",
                code.class()
            );
        }
        for documented in docs.keys() {
            assert!(
                codes.iter().any(|c| c.as_str() == documented),
                "docs/errors.md documents `{documented}`, which no crate defines"
            );
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut names: Vec<&str> = all().iter().map(|c| c.as_str()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
