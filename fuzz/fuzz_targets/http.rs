//! The HTTP surface of `lenet serve` (routing, method checks, body limits, content
//! types, PNG/JPEG/JSON decoding, inference), driven as a service without a socket.
//! Any request gets an answer that is not a 500; hyper's own parsing of the bytes
//! on the wire is hyper's to fuzz.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::HEAD,
    Method::DELETE,
    Method::OPTIONS,
];
const PATHS: [&str; 6] = ["/", "/index.html", "/api/health", "/api/predict", "/api/predict?x=1", "/nope"];
const TYPES: [Option<&str>; 6] = [
    None,
    Some("image/png"),
    Some("image/jpeg"),
    Some("application/json"),
    Some("text/plain"),
    Some("application/octet-stream"),
];

fn server() -> &'static (tokio::runtime::Runtime, Router) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let model = lenet_layers::LeNet5::new(lenet_layers::ModelConfig::classic(), 1).expect("the classic model");
        let app = lenet_cli::serve::app(model, 1).expect("the app");
        (runtime, app)
    })
}

fuzz_target!(|data: &[u8]| {
    let [m, p, t, body @ ..] = data else { return };
    // a path byte past the list takes the path from the body's first line
    let (path, body) = match PATHS.get(*p as usize % 8) {
        Some(path) => (path.to_string(), body),
        None => {
            let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            (format!("/{}", String::from_utf8_lossy(&body[..end])), body.get(end + 1..).unwrap_or(&[]))
        }
    };
    let method = METHODS[*m as usize % METHODS.len()].clone();
    let head = method == Method::HEAD;
    let mut request = Request::builder()
        .method(method)
        .uri(path.as_str());
    if let Some(kind) = TYPES[*t as usize % TYPES.len()] {
        request = request.header("content-type", kind);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return; // not a URI: hyper would have refused it before the router
    };
    let (runtime, app) = server();
    let response = runtime
        .block_on(app.clone().oneshot(request))
        .unwrap_or_else(|never| match never {});
    assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("a whole reply body");
    if path.starts_with("/api/") && !head {
        // every API answer, success or refusal, is JSON (HEAD gets no body)
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("a JSON reply");
    }
});
