//! Mounting a server in an axum application: one `Router` with every route the endpoints need
//! (feature `axum`).

use axum::Router;

use super::service::StompService;
use crate::config::Config;

/// The routes of `config`'s endpoints and assets, each served by `service`: every endpoint
/// path, everything below a SockJS endpoint (`/ws/info`, `/ws/iframe.html`, the transports),
/// and the static assets (`/stompede.js`, the application's pages).
pub(crate) fn router<S>(config: &Config, service: StompService) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Each path once: axum refuses (panics on) a route registered twice, as `/` would be for
    // a SockJS endpoint at `/`, or a page registered at `/ws/`.
    let mut paths: Vec<String> = Vec::new();
    for endpoint in &config.endpoints {
        paths.push(endpoint.path.clone());
        #[cfg(feature = "sockjs")]
        if endpoint.sockjs.is_some() {
            let base = endpoint.path.trim_end_matches('/');
            paths.push(format!("{base}/"));
            paths.push(format!("{base}/{{*sockjs}}"));
        }
    }
    paths.extend(config.assets().iter().map(|asset| asset.path.clone()));
    paths.extend(config.dynamic_pages.iter().map(|page| page.path.clone()));
    let mut router = Router::new();
    for (i, path) in paths.iter().enumerate() {
        if !paths[..i].contains(path) {
            router = router.route_service(path, service.clone());
        }
    }
    router
}
