//! Helpers shared by the collector's unit tests.

use phosphor_store::model::{Fragment, Span};

use crate::decode::Decoded;

/// A payload captured from a real client (`../shared/fixtures/real-clients`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/real-clients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
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
