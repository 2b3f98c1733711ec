//! The broker example's `/metrics` page: Prometheus's text format, rendered by the recorder the
//! process installed (`metrics-exporter-prometheus`), served by the broker itself beside `/ws`.
//! Shared with the test that scrapes it (tests/tests/metrics.rs).

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use stompede::{Server, ServerBuilder};

/// Where the page is served.
pub(crate) const PATH: &str = "/metrics";

/// Adds the `/metrics` page to `builder`. The returned cell must be given the server once it
/// is built: each scrape takes its stats first, which sets the broker's gauges
/// (`stompede_subscriptions`, `stompede_destinations`).
pub(crate) fn serve(
    builder: ServerBuilder,
    handle: PrometheusHandle,
) -> (ServerBuilder, Arc<OnceLock<Server>>) {
    let serving: Arc<OnceLock<Server>> = Arc::default();
    let server = serving.clone();
    let builder =
        builder.dynamic_page(PATH, "text/plain; version=0.0.4; charset=utf-8", move || {
            if let Some(server) = server.get() {
                let _ = server.stats();
            }
            handle.render().into()
        });
    (builder, serving)
}
