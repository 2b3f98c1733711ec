//! Support code shared by stompede's integration tests (in `tests/tests/`).

/// Whether every optional tool must be present: CI sets `STOMPEDE_REQUIRE_ALL=1`, which turns
/// each "skipped because X is missing" into a failure.
pub fn require_all() -> bool {
    std::env::var("STOMPEDE_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Reports that a test cannot run because `what` is missing: prints why and returns, or panics
/// when [`require_all`] is set.
pub fn skip(test: &str, what: &str) {
    assert!(!require_all(), "{test}: {what} (STOMPEDE_REQUIRE_ALL=1 forbids skipping)");
    eprintln!("SKIPPED {test}: {what}");
}
