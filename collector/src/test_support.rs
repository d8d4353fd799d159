//! Helpers shared by the collector's unit tests.

use phosphor_store::model::{Fragment, Span};

use crate::decode::Decoded;

/// Where the payloads captured from real clients are.
fn fixture_dir() -> String {
    format!(
        "{}/../../shared/fixtures/real-clients",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A payload captured from a real client (`../shared/fixtures/real-clients`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/{name}", fixture_dir());
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every captured payload, by file name.
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = fixture_dir();
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let body = fixture(&name);
            (name, body)
        })
        .collect();
    out.sort();
    out
}

/// The spans of a decode; panics on annotations.
pub fn spans(d: &Decoded) -> Vec<&Span> {
    d.fragments
        .iter()
        .map(|f| match f {
            Fragment::Span(s) => s,
            Fragment::Annotation(_) => panic!("an annotation where spans were expected"),
        })
        .collect()
}
