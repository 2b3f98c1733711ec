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
    let mut router = Router::new();
    for endpoint in &config.endpoints {
        router = router.route_service(&endpoint.path, service.clone());
        #[cfg(feature = "sockjs")]
        if endpoint.sockjs.is_some() {
            let base = endpoint.path.trim_end_matches('/');
            router = router
                .route_service(&format!("{base}/"), service.clone())
                .route_service(&format!("{base}/{{*sockjs}}"), service.clone());
        }
    }
    for asset in config.assets() {
        router = router.route_service(&asset.path, service.clone());
    }
    router
}
