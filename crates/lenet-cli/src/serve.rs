//! `lenet serve`: a page to draw a digit on and watch LeNet-5 read it, and the JSON
//! API behind it. One self-contained page (HTML, CSS and JS embedded in the binary),
//! `POST /api/predict`, `GET /api/health`; every bad request gets a 4xx JSON error
//! and the server keeps serving. Images go through `mnist_io::digit` exactly as for
//! `lenet predict`.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lenet_layers::{model_file, LeNet5, Output};
use mnist_io::{digit, Dataset};
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::commands::{predict_dataset, ModelArgs};

/// The page, embedded: no CDN, nothing to build.
const PAGE: &str = include_str!("../assets/serve.html");
/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 4 << 20;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on. The default is loopback only; another address exposes
    /// the server to the network
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Request-handling threads, each with its own copy of the model (1 to 256) [default: all cores]
    #[arg(long, value_parser = crate::limits::threads)]
    pub workers: Option<usize>,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let model = args.model.load()?;
    let bytes = model_file::to_bytes(&model)?;
    let listener =
        std::net::TcpListener::bind(&args.addr).with_context(|| format!("cannot listen on {}", args.addr))?;
    no_delay(&listener);
    let server = Server::from_listener(listener, None)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot serve on {}", args.addr))?;
    let server = Arc::new(server);
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "serving LeNet-5 ({}) on http://{} ({workers} workers); Ctrl-C stops",
        model.config().preset,
        server.server_addr()
    );
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let server = server.clone();
            let mut model = model_file::from_bytes(&bytes, std::path::Path::new("(in memory)"))?;
            Ok(std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    respond(request, &mut model);
                }
            }))
        })
        .collect::<Result<_>>()?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// Turns off Nagle's algorithm on the listening socket, which Linux passes on to
/// every accepted connection: tiny_http writes a response's head and body
/// separately, and with Nagle on, a keep-alive client's delayed ACK then holds each
/// response back ~40 ms (measured: 182 requests/s with, thousands without).
fn no_delay(listener: &std::net::TcpListener) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given size.
        unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = listener;
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
}

fn respond(mut request: Request, model: &mut LeNet5) {
    // The handler does not panic on any input (fuzzed, tested); should a bug make it
    // panic anyway, this request gets a 500 and the worker goes on serving.
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(&mut request, model)))
        .unwrap_or_else(|_| Reply::error(500, "internal error"));
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    let headers = [
        ("Content-Type", reply.kind),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ];
    for (name, value) in headers.into_iter().chain(reply.allow.map(|a| ("Allow", a))) {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response); // the client may have gone; nothing to do
}

fn route(request: &mut Request, model: &mut LeNet5) -> Reply {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let wrong_method = |allow: &'static str| Reply {
        allow: Some(allow),
        ..Reply::error(405, format!("{method} is not allowed on {path}; use {allow}"))
    };
    match path.as_str() {
        "/" | "/index.html" => match method {
            Method::Get | Method::Head => Reply {
                status: 200,
                kind: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
                allow: None,
            },
            _ => wrong_method("GET"),
        },
        "/api/health" => match method {
            Method::Get => Reply::json(200, &health(model)),
            _ => wrong_method("GET"),
        },
        "/api/predict" => match method {
            Method::Post => match read_body(request).and_then(|body| to_digit(request, &body)) {
                Ok(pixels) => match analyse(model, pixels) {
                    Ok(answer) => Reply::json(200, &answer),
                    Err(e) => Reply::error(500, e.to_string()),
                },
                Err(reply) => reply,
            },
            _ => wrong_method("POST"),
        },
        _ => Reply::error(404, format!("no such page: {path}")),
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

/// The body, refusing more than [`MAX_BODY`] bytes (from the header when given, and
/// while reading in any case).
fn read_body(request: &mut Request) -> Result<Vec<u8>, Reply> {
    let too_big = || Reply::error(413, format!("request body over the {MAX_BODY}-byte limit"));
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_big());
    }
    if body.is_empty() {
        return Err(Reply::error(
            400,
            "empty body: send PNG/JPEG bytes or {\"pixels\": [...]}",
        ));
    }
    Ok(body)
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
fn to_digit(request: &Request, body: &[u8]) -> Result<Vec<u8>, Reply> {
    let is_json = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Content-Type") && h.value.as_str().starts_with("application/json"))
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
