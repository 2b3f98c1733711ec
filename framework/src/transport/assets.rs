//! Static files a server answers beside its endpoints: the browser client `stompede.js`, and
//! pages the application registers (the hello example's page at `/`).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::ResponseBody;

/// The browser client, an ES module (see `docs/browser-client.md`).
pub(crate) const CLIENT_SCRIPT: &str = include_str!("../../assets/stompede.js");

/// Where the browser client is served.
pub(crate) const CLIENT_SCRIPT_PATH: &str = "/stompede.js";

/// One static file.
#[derive(Clone, Debug)]
pub(crate) struct Asset {
    pub(crate) path: String,
    content_type: HeaderValue,
    body: Bytes,
    etag: HeaderValue,
}

impl Asset {
    /// An asset; `None` if `content_type` cannot be a header value.
    pub(crate) fn new(path: String, content_type: &str, body: Bytes) -> Option<Asset> {
        let content_type = HeaderValue::from_str(content_type).ok()?;
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body))).ok()?;
        Some(Asset { path, content_type, body, etag })
    }

    pub(crate) fn client_script() -> Option<Asset> {
        let body = Bytes::from_static(CLIENT_SCRIPT.as_bytes());
        Asset::new(CLIENT_SCRIPT_PATH.into(), "text/javascript; charset=utf-8", body)
    }

    /// The response to `method` with these request headers: the file (GET), its headers (HEAD),
    /// 304 when the client's copy is current, 405 for other methods.
    pub(crate) fn respond(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Response<ResponseBody> {
        let head = *method == Method::HEAD;
        if *method != Method::GET && !head {
            return get_and_head_only(&self.path);
        }
        let current = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == "*" || tag.trim().as_bytes() == self.etag.as_bytes());
        let (status, body) = match (current, head) {
            (true, _) => (StatusCode::NOT_MODIFIED, Bytes::new()),
            (false, true) => (StatusCode::OK, Bytes::new()),
            (false, false) => (StatusCode::OK, self.body.clone()),
        };
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::ETAG, self.etag.clone());
        // Revalidate each time (cheap, thanks to the ETag): a new server version is picked up.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        response
    }
}

/// A page made afresh for each request (`ServerBuilder::dynamic_page`): metrics, a health
/// check.
#[derive(Clone)]
pub(crate) struct DynamicPage {
    pub(crate) path: String,
    pub(crate) content_type: HeaderValue,
    pub(crate) render: std::sync::Arc<dyn Fn() -> Bytes + Send + Sync>,
}

impl DynamicPage {
    /// The response to `method`: the page (GET), its headers (HEAD), 405 for other methods.
    pub(crate) fn respond(&self, method: &Method) -> Response<ResponseBody> {
        let head = *method == Method::HEAD;
        if *method != Method::GET && !head {
            return get_and_head_only(&self.path);
        }
        let body = (self.render)();
        let length = body.len();
        let mut response =
            Response::new(ResponseBody::full(if head { Bytes::new() } else { body }));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        response
    }
}

/// 405 for a page that serves GET and HEAD only.
fn get_and_head_only(path: &str) -> Response<ResponseBody> {
    let message = format!("{path} serves GET and HEAD only");
    let mut response = Response::new(ResponseBody::full(Bytes::from(message)));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// FNV-1a, for ETags (not for security: a changed file only needs a changed tag).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_head_conditional_and_other_methods() {
        let asset = Asset::new("/".into(), "text/html; charset=utf-8", Bytes::from("<p>hi</p>"))
            .expect("valid content type");
        let none = http::HeaderMap::new();
        let get = asset.respond(&Method::GET, &none);
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(get.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let etag = get.headers()[header::ETAG].clone();

        let head = asset.respond(&Method::HEAD, &none);
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "9");

        let mut conditional = http::HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(asset.respond(&Method::GET, &conditional).status(), StatusCode::NOT_MODIFIED);

        let post = asset.respond(&Method::POST, &none);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");

        assert!(Asset::new("/x".into(), "bad\nvalue", Bytes::new()).is_none());
    }
}
