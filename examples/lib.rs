//! The stompede examples live beside this file, one folder each; run one with
//! `cargo run --example NAME` from the workspace root.
