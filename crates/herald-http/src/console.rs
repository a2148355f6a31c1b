//! The web console: a page at `/console` and its files at `/console/<name>`, all compiled into
//! the binary, so serving it needs no files on disk, no build step and no network.
//!
//! The page itself needs no token (it asks for one and calls the API like any other client).
//! Every file goes out with a strict `Content-Security-Policy` (`default-src 'self'`: no inline
//! script or style, no other origin, no plugins, no framing, no form submissions), so even text
//! that somehow reached the page as markup could run nothing; with `nosniff`, so a file is only
//! ever what its type says; and with an `ETag` computed from its bytes at compile time, so a
//! browser revalidates (`Cache-Control: no-cache`) and gets `304 Not Modified` until a new
//! build changes the file.
//!
//! The page refers to its files and to the API by *relative* URLs (`console/main.js`,
//! `api/v1/...`), so it keeps working when Herald's routes are mounted under a path prefix.
//! That is why `/console/` (which would resolve them one level too deep) redirects to
//! `/console`.

use crate::error::ApiError;
use crate::HttpResponse;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;

/// The console's security policy. `'self'` also admits the same-origin WebSocket (`ws:`/`wss:`
/// to this host and port) in current browsers; `form-action 'none'` keeps a form from ever
/// sending the token anywhere (or into a URL) even if its script failed to load.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// One file compiled into the binary.
struct File {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

/// 64-bit FNV-1a, evaluated at compile time: the same bytes always get the same tag, whichever
/// compiler built them.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! file {
    ($name:literal, $content_type:literal) => {
        file!($name, $name, $content_type)
    };
    // A file kept elsewhere under `console/` (vendored code) but served under a flat name.
    ($name:literal, $path:literal, $content_type:literal) => {
        File {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../console/", $path)),
            etag: fnv1a(include_bytes!(concat!("../console/", $path))),
        }
    };
}

static PAGE: File = file!("index.html", "text/html; charset=utf-8");

static ASSETS: &[File] = &[
    file!("console.css", "text/css; charset=utf-8"),
    file!("favicon.svg", "image/svg+xml"),
    file!("main.js", "text/javascript; charset=utf-8"),
    file!("api.js", "text/javascript; charset=utf-8"),
    file!("dom.js", "text/javascript; charset=utf-8"),
    file!("live.js", "text/javascript; charset=utf-8"),
    file!("webhooks.js", "text/javascript; charset=utf-8"),
    file!("deliveries.js", "text/javascript; charset=utf-8"),
    file!("events.js", "text/javascript; charset=utf-8"),
    file!("sessions.js", "text/javascript; charset=utf-8"),
    file!("polls.js", "text/javascript; charset=utf-8"),
    // A pinned third-party QR encoder (MIT), kept apart so its origin is plain.
    file!(
        "qrcode.js",
        "vendor/qrcode.js",
        "text/javascript; charset=utf-8"
    ),
];

/// `GET /console`: the page (or, for `/console/`, a redirect to it).
pub(crate) fn page<B>(request: &Request<B>) -> HttpResponse {
    let path = request.uri().path();
    let trailing = path.len() - path.trim_end_matches('/').len();
    if trailing > 0 {
        // Relative, so it stays right under any mount prefix: `/x/console/` → `/x/console`.
        let location = format!("{}console", "../".repeat(trailing));
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    serve(&PAGE, request)
}

/// `GET /console/{asset}`: one of the page's files (404 for any other name).
pub(crate) fn asset<B>(name: &str, request: &Request<B>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|file| file.name == name)
        .map(|file| serve(file, request))
        .ok_or_else(|| ApiError::not_found("no such console file"))
}

fn serve<B>(file: &File, request: &Request<B>) -> HttpResponse {
    let etag = format!("\"{:016x}\"", file.etag);
    let fresh = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let mut response = if fresh {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(file.body)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex in quotes is a valid header value"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, if_none_match: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(path);
        if let Some(tag) = if_none_match {
            builder = builder.header(header::IF_NONE_MATCH, tag);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_page_comes_with_its_security_headers_and_a_content_tag() {
        let response = page(&get("/console", None));
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'"));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(etag.len(), 18, "a quoted 64-bit hex tag: {etag}");

        let again = page(&get("/console", Some(&format!("W/\"0\", {etag}"))));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        let stale = page(&get("/console", Some("\"0000000000000000\"")));
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn a_trailing_slash_redirects_relatively() {
        let response = page(&get("/console/", None));
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "../console");
    }

    #[test]
    fn every_file_the_page_names_is_served_and_nothing_else() {
        let html = std::str::from_utf8(PAGE.body).unwrap();
        for piece in html.split("\"console/").skip(1) {
            let name = piece.split('"').next().unwrap();
            let response = asset(name, &get("/", None)).expect(name);
            assert_eq!(response.status(), StatusCode::OK, "{name}");
        }
        for file in ASSETS {
            if file.name.ends_with(".js") {
                assert!(
                    html.contains(&format!("\"console/{}\"", file.name)),
                    "index.html preloads {}",
                    file.name
                );
            }
        }
        assert_eq!(
            asset("../Cargo.toml", &get("/", None)).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            asset("index.html", &get("/", None)).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn content_tags_differ_when_bytes_differ() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        let tags: std::collections::HashSet<u64> = ASSETS.iter().map(|f| f.etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
