//! Procedural macros for [stompede](https://docs.rs/stompede).
//!
//! Do not depend on this crate directly: `stompede` re-exports everything it offers. The
//! handler attributes (`#[message_mapping]`, `#[send_to]`, …) arrive with the dispatch layer.
