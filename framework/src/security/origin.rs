//! The origin policy: which pages may open a session (CSWSH protection). A browser sends
//! `Origin` with every WebSocket handshake and cross-origin request; other clients send none
//! and have nothing to protect against.

use http::header;

use crate::config::AllowedOrigins;

/// `Err(origin)` when the request's `Origin` is not allowed.
pub(crate) fn check_origin(
    allowed: &AllowedOrigins,
    parts: &http::request::Parts,
) -> Result<(), String> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(()); // not a browser: nothing to protect against cross-site use
    };
    let origin = origin.to_str().map_err(|_| "(not text)".to_owned())?.trim_end_matches('/');
    if *allowed == AllowedOrigins::Any {
        return Ok(());
    }
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if same_origin(origin, host) {
        return Ok(());
    }
    match allowed {
        AllowedOrigins::List(list) if list.iter().any(|o| o.eq_ignore_ascii_case(origin)) => Ok(()),
        _ => Err(origin.to_owned()),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => "",
    };
    let strip = |a: &str| a.strip_suffix(default_port).unwrap_or(a).to_ascii_lowercase();
    !host.is_empty() && strip(authority) == strip(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().uri("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).map(|r| r.into_parts().0).expect("valid test request")
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        assert!(same_origin("http://localhost:8080", "localhost:8080"));
        assert!(same_origin("http://Example.com", "example.com:80"));
        assert!(!same_origin("http://evil.com", "example.com"));
        assert!(!same_origin("http://localhost:8081", "localhost:8080"));
        assert!(!same_origin("null", "localhost"));
    }

    #[test]
    fn origin_policy() {
        let list = AllowedOrigins::List(vec!["https://app.example.com".into()]);
        let cross = parts(&[("origin", "https://app.example.com"), ("host", "api.example.com")]);
        assert!(check_origin(&list, &cross).is_ok());
        assert!(check_origin(&AllowedOrigins::SameOrigin, &cross).is_err());
        assert!(check_origin(&AllowedOrigins::Any, &cross).is_ok());
        assert!(check_origin(&AllowedOrigins::SameOrigin, &parts(&[("host", "x")])).is_ok());
    }
}
