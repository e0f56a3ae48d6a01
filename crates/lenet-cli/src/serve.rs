//! `lenet serve`: a page to draw a digit on and watch LeNet-5 read it, and the JSON
//! API behind it. One self-contained page (HTML, CSS and JS embedded in the binary),
//! `POST /api/predict`, `GET /api/health`; every bad request gets a 4xx JSON error
//! and the server keeps serving. Images go through `mnist_io::digit` exactly as for
//! `lenet predict`.
//!
//! The server runs on tokio, hyper and axum, so that no client can hold a thread:
//! - connections are async tasks, at most [`MAX_CONNECTIONS`]; past that a new
//!   connection gets `503` with `Retry-After` and is closed;
//! - a request's headers must arrive within [`HEADER_TIMEOUT`], its body within
//!   [`BODY_TIMEOUT`] (`408` otherwise), and bodies over [`MAX_BODY`] are refused
//!   while reading (`413`);
//! - decoding and inference run on a bounded pool of `--workers` blocking threads,
//!   each with its own copy of the model, and at most [`QUEUE`] more requests wait
//!   for one (`503` with `Retry-After` past that); `/api/health` and the page are
//!   answered on the async side, so stalled uploads never delay them;
//! - SIGTERM or Ctrl-C stops accepting, lets requests in flight finish (up to
//!   [`GRACE`]) and exits 0; if the listener fails, the process exits 1 so a
//!   supervisor restarts it;
//! - each request is logged (method, path, status, latency) at info level with
//!   `tracing`, on stderr.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use lenet_layers::{model_file, LeNet5, Output};
use mnist_io::{digit, Dataset};
use serde::Serialize;
use tokio::sync::Semaphore;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::commands::{predict_dataset, ModelArgs};

/// The page, embedded: no CDN, nothing to build.
const PAGE: &str = include_str!("../assets/serve.html");
/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 4 << 20;
/// Most open connections by default (`--max-connections`); past this a new one
/// gets 503 and is closed.
pub const MAX_CONNECTIONS: usize = 512;
/// Requests that may wait for a worker beyond those being served.
pub const QUEUE: usize = 64;
/// Time a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time requests in flight get to finish after SIGTERM or Ctrl-C.
pub const GRACE: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on. The default is loopback only; another address exposes
    /// the server to the network
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Inference threads, each with its own copy of the model (1 to 256) [default: all cores]
    #[arg(long, value_parser = crate::limits::threads)]
    pub workers: Option<usize>,
    /// Most open connections (1 to 65536); past this a new connection gets 503 with
    /// Retry-After and is closed
    #[arg(long, default_value_t = MAX_CONNECTIONS, value_parser = crate::limits::batch_size)]
    pub max_connections: usize,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let model = args.model.load()?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let listener =
        std::net::TcpListener::bind(&args.addr).with_context(|| format!("cannot listen on {}", args.addr))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(workers + 2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(Level::INFO)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let state = Arc::new(AppState::new(model, workers)?);
    println!(
        "serving LeNet-5 ({}) on http://{addr} ({workers} workers); Ctrl-C stops",
        state.health.preset
    );
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        accept_loop(listener, router(state), args.max_connections).await
    })
}

/// Accepts connections until SIGTERM or Ctrl-C, then drains them.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, max_connections: usize) -> Result<()> {
    let connections = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if transient(&e) => {
                    // out of descriptors or a connection reset before accept: wait, go on
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e).context("the listener failed; exiting so a supervisor restarts the server"),
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    eprintln!("shutting down: finishing the requests in flight");
    if tokio::time::timeout(GRACE, graceful.shutdown()).await.is_err() {
        eprintln!("requests still running after {GRACE:?}: stopping them");
    }
    Ok(())
}

/// Accept errors that do not mean the listener is broken.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut)
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: resources run out for a while
        || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Answers a connection past [`MAX_CONNECTIONS`] with 503 and closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = br#"{"error":"the server is at its connection limit; retry shortly"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// What every handler shares.
struct AppState {
    health: Health,
    /// Idle copies of the model; a worker takes one for a request.
    models: Mutex<Vec<LeNet5>>,
    /// The model file's bytes, to make a new copy if one is lost to a panic.
    bytes: Vec<u8>,
    /// One permit per worker thread.
    workers: Semaphore,
    /// Requests admitted: being served or waiting (workers + [`QUEUE`]).
    admitted: Semaphore,
}

impl AppState {
    fn new(model: LeNet5, workers: usize) -> Result<Self> {
        let bytes = model_file::to_bytes(&model)?;
        let copies = (1..workers)
            .map(|_| model_file::from_bytes(&bytes, std::path::Path::new("(in memory)")))
            .collect::<Result<Vec<_>, _>>()?;
        let health = health(&model);
        Ok(AppState {
            health,
            models: Mutex::new(std::iter::once(model).chain(copies).collect()),
            bytes,
            workers: Semaphore::new(workers),
            admitted: Semaphore::new(workers + QUEUE),
        })
    }

    /// Decodes `body` and runs the model on it on a worker thread; 503 if the
    /// queue is full.
    async fn predict(self: Arc<Self>, content_type: Option<String>, body: Vec<u8>) -> Reply {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return Reply::busy("every worker is busy and the queue is full; retry shortly");
        };
        let Ok(_worker) = self.workers.acquire().await else {
            return Reply::error(503, "the server is shutting down");
        };
        let state = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let pixels = match to_digit(content_type.as_deref(), &body) {
                Ok(p) => p,
                Err(reply) => return reply,
            };
            let mut model = state.take_model();
            let answer = analyse(&mut model, pixels);
            state.give_back(model);
            match answer {
                Ok(a) => Reply::json(200, &a),
                Err(e) => Reply::error(500, e.to_string()),
            }
        });
        // a panic in the handler (none is known: fuzzed, tested) costs that
        // request a 500 and its copy of the model, which take_model replaces
        work.await.unwrap_or_else(|_| Reply::error(500, "internal error"))
    }

    fn take_model(&self) -> LeNet5 {
        let idle = self.models.lock().ok().and_then(|mut m| m.pop());
        idle.or_else(|| model_file::from_bytes(&self.bytes, std::path::Path::new("(in memory)")).ok())
            .unwrap_or_else(|| unreachable!("the served model's own bytes load"))
    }

    fn give_back(&self, model: LeNet5) {
        if let Ok(mut m) = self.models.lock() {
            m.push(model);
        }
    }
}

/// The server's whole HTTP surface (pages, API, limits, request log) as one
/// service over `model` with `workers` inference threads, without a socket: what
/// [`serve`] runs behind its listener, and what the `http` fuzz target calls.
pub fn app(model: LeNet5, workers: usize) -> Result<Router> {
    Ok(router(Arc::new(AppState::new(model, workers.max(1))?)))
}

fn router(state: Arc<AppState>) -> Router {
    let not_allowed = |allow: &'static str| {
        move |method: Method, uri: Uri| async move {
            Reply {
                allow: Some(allow),
                ..Reply::error(
                    405,
                    format!("{method} is not allowed on {}; use {allow}", uri.path()),
                )
            }
        }
    };
    let page: MethodRouter<Arc<AppState>> = get(|| async {
        Reply {
            status: 200,
            kind: "text/html; charset=utf-8",
            body: PAGE.as_bytes().to_vec(),
            allow: None,
        }
    })
    .fallback(not_allowed("GET"));
    Router::new()
        .route("/", page.clone())
        .route("/index.html", page)
        .route(
            "/api/health",
            get(|State(s): State<Arc<AppState>>| async move { Reply::json(200, &s.health) })
                .fallback(not_allowed("GET")),
        )
        .route("/api/predict", post(predict).fallback(not_allowed("POST")))
        .fallback(|uri: Uri| async move { Reply::error(404, format!("no such page: {}", uri.path())) })
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

async fn predict(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Reply {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_big();
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => {
            return Reply::error(
                408,
                format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
            )
        }
        Ok(Err(e)) if is_length_limit(&e) => return too_big(),
        Ok(Err(e)) => return Reply::error(400, format!("cannot read the request body: {e}")),
        Ok(Ok(body)) => body,
    };
    if body.is_empty() {
        return Reply::error(400, "empty body: send PNG/JPEG bytes or {\"pixels\": [...]}");
    }
    state.predict(content_type, body.to_vec()).await
}

fn too_big() -> Reply {
    Reply::error(413, format!("request body over the {MAX_BODY}-byte limit"))
}

/// Did reading the body stop at the size limit?
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit") {
            return true;
        }
        source = s.source();
    }
    false
}

/// An answer: status, content type, body.
struct Reply {
    status: u16,
    kind: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Reply {
        Reply {
            status,
            kind: "application/json",
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
            allow: None,
        }
    }
    fn error(status: u16, message: impl Into<String>) -> Reply {
        #[derive(Serialize)]
        struct Error {
            error: String,
        }
        Reply::json(
            status,
            &Error {
                error: message.into(),
            },
        )
    }
    /// 503 with `Retry-After: 1` (carried in `allow`'s place by [`IntoResponse`]).
    fn busy(message: &str) -> Reply {
        Reply::error(503, message)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.kind));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == 503 {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    preset: String,
    parameters: usize,
    output: &'static str,
}

fn health(model: &LeNet5) -> Health {
    Health {
        status: "ok",
        preset: model.config().preset.to_string(),
        parameters: model.trainable_params(),
        output: output_name(model),
    }
}

fn output_name(model: &LeNet5) -> &'static str {
    match model.config().output {
        Output::Rbf => "rbf",
        Output::Softmax => "softmax",
    }
}

/// A JSON body: `{"pixels": [784 values]}` or `{"pixels": [[28 values] x 28]}` (or the
/// bare array), grayscale 0-255, either polarity.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonImage {
    Object { pixels: Pixels },
    Bare(Pixels),
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Pixels {
    Flat(Vec<f64>),
    Rows(Vec<Vec<f64>>),
}

/// The 28x28 MNIST-style digit in a request body: JSON pixels or image bytes, both
/// through `mnist_io`'s preprocessing, as `lenet predict` does.
fn to_digit(content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Reply> {
    let is_json = content_type.is_some_and(|t| t.starts_with("application/json"))
        || matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['));
    if !is_json {
        return digit::decode_digit(body).map_err(|e| match e {
            digit::DigitError::UnknownFormat => Reply::error(
                415,
                "the body is neither a PNG/JPEG image nor JSON pixels ({\"pixels\": [...]})",
            ),
            other => Reply::error(400, other.to_string()),
        });
    }
    let parsed: JsonImage = serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            400,
            format!("bad JSON ({e}); expected {{\"pixels\": [784 numbers]}} or 28 rows of 28"),
        )
    })?;
    let pixels = match parsed {
        JsonImage::Object { pixels } | JsonImage::Bare(pixels) => pixels,
    };
    let flat: Vec<f64> = match pixels {
        Pixels::Flat(v) => v,
        Pixels::Rows(rows) if rows.len() == 28 && rows.iter().all(|r| r.len() == 28) => rows.concat(),
        Pixels::Rows(_) => return Err(Reply::error(400, "pixels must be 28 rows of 28 values")),
    };
    if flat.len() != 28 * 28 {
        return Err(Reply::error(
            400,
            format!("pixels has {} values; a 28x28 image has 784", flat.len()),
        ));
    }
    if let Some(v) = flat.iter().find(|v| !(0.0..=255.0).contains(*v)) {
        return Err(Reply::error(400, format!("pixel value {v} is outside 0-255")));
    }
    let gray: Vec<u8> = flat.iter().map(|&v| v.round() as u8).collect();
    digit::digit_from_gray(&gray, 28, 28).map_err(|e| Reply::error(400, e.to_string()))
}

/// A feature map for display: values scaled to 0-255 between `min` and `max`.
#[derive(Serialize)]
struct Map {
    name: &'static str,
    channels: usize,
    height: usize,
    width: usize,
    min: f32,
    max: f32,
    values: Vec<u8>,
}

#[derive(Serialize)]
struct Answer {
    class: usize,
    output: &'static str,
    /// RBF penalties (smaller is better) or logits.
    scores: Vec<f32>,
    probabilities: Vec<f32>,
    /// The preprocessed 28x28 input, as the network saw it (before padding to 32x32).
    input: Vec<u8>,
    maps: Vec<Map>,
    /// The RBF centre (7x12 bitmap, -1/+1) of the predicted class; none for softmax.
    bitmap: Option<Vec<f32>>,
}

fn analyse(model: &mut LeNet5, pixels: Vec<u8>) -> Result<Answer> {
    let ds = Dataset::from_parts(pixels.clone(), vec![0], 28, 28)?;
    let p = predict_dataset(model, &ds, &[0], 1)?.remove(0);
    let wanted = [
        ("act.c1.out", "C1", 6, 28, 28),
        ("act.c3.out", "C3", 16, 10, 10),
        ("act.f6.out", "F6", 1, 7, 12),
    ];
    let acts = model.named_activations();
    let maps = wanted
        .iter()
        .filter_map(|&(key, name, channels, height, width)| {
            let (_, _, data) = acts
                .iter()
                .find(|(n, _, d)| n == key && d.len() == channels * height * width)?;
            let (min, max) = data
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let span = (max - min).max(1e-6);
            let values = data
                .iter()
                .map(|&v| ((v - min) / span * 255.0).round() as u8)
                .collect();
            Some(Map {
                name,
                channels,
                height,
                width,
                min,
                max,
                values,
            })
        })
        .collect();
    let bitmap = model
        .tensors()
        .find(|t| t.name == "output.centers")
        .and_then(|t| t.value.get(p.class * 84..(p.class + 1) * 84))
        .map(|b| b.to_vec());
    Ok(Answer {
        class: p.class,
        output: output_name(model),
        scores: p.scores,
        probabilities: p.probabilities,
        input: pixels,
        maps,
        bitmap,
    })
}
