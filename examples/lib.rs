//! The stompede examples live beside this file, one folder each; run one with
//! `cargo run --example NAME` from the workspace root.

/// Installs the `tracing` subscriber every example uses: log lines on standard error, filtered
/// by `RUST_LOG` as in the rest of the ecosystem (`RUST_LOG=debug`, `RUST_LOG=stompede=trace`),
/// `info` when it is unset. Without a subscriber a program prints none of stompede's logs.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
