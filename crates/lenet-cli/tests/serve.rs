//! `lenet serve` over real HTTP: every endpoint, every kind of bad request (the
//! server answers 4xx JSON and keeps serving), and the page in headless Chromium,
//! driven through chromedriver's WebDriver API: a "1" drawn with the mouse is read
//! as a 1. The browser test is `#[ignore]`d: it needs Chromium and chromedriver (CI installs
//! them and runs it with `--ignored`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test stops at the first surprise

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn shipped_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/lenet5-classic.safetensors")
}

/// A running `lenet serve` on a free loopback port; killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    serve_with(&[])
}

/// [`serve`] with more flags.
fn serve_with(flags: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2", "--model"])
        .arg(shipped_model())
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "serving LeNet-5 (classic) on http://127.0.0.1:PORT (2 workers); ..."
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served { child, addr }
}

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = content_type {
        head += &format!("Content-Type: {t}\r\n");
    }
    if method != "GET" && method != "DELETE" || !body.is_empty() {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(b"\r\n").unwrap();
    let _ = s.write_all(body); // the server may refuse a huge body before reading it
                               // read the head, then exactly the body it announces (some servers keep the
                               // connection open despite `Connection: close`)
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head += &line;
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .expect("a status line")
        .parse()
        .unwrap();
    let header = |name: &str| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l[name.len() + 1..].trim().to_string())
    };
    let mut body = Vec::new();
    if let Some(n) = header("content-length") {
        body.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    (status, body)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// A PNG of a dark vertical stroke on white: a "1".
fn one_png() -> Vec<u8> {
    let img = image::GrayImage::from_fn(60, 80, |x, y| {
        image::Luma([if (27..33).contains(&x) && (10..70).contains(&y) {
            0
        } else {
            255
        }])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[test]
fn health_page_and_predictions() {
    let s = serve();
    let (status, body) = http(&s.addr, "GET", "/api/health", None, b"");
    assert_eq!(status, 200);
    let health = json_of(&body);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["preset"], "classic");
    assert_eq!(health["parameters"], 60000);

    let (status, page) = http(&s.addr, "GET", "/", None, b"");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<canvas id=\"pad\"") && page.contains("/api/predict"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from outside"
    );

    // PNG bytes
    let (status, body) = http(&s.addr, "POST", "/api/predict", Some("image/png"), &one_png());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let a = json_of(&body);
    assert_eq!(a["class"], 1, "{a}");
    assert_eq!(a["scores"].as_array().unwrap().len(), 10);
    let p: f64 = a["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(p > 0.0 && p <= 1.0 + 1e-5);
    assert_eq!(a["input"].as_array().unwrap().len(), 784);
    let maps: Vec<(String, u64)> = a["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["values"].as_array().unwrap().len() as u64,
            )
        })
        .collect();
    assert_eq!(
        maps,
        [
            ("C1".into(), 6 * 28 * 28),
            ("C3".into(), 16 * 100),
            ("F6".into(), 84)
        ]
    );
    assert_eq!(a["bitmap"].as_array().unwrap().len(), 84);

    // the same digit as a JSON array, flat and as rows, gives the same answer
    let gray: Vec<u8> = image::imageops::resize(
        &image::load_from_memory(&one_png()).unwrap().to_luma8(),
        28,
        28,
        image::imageops::FilterType::Triangle,
    )
    .into_raw();
    let rows: Vec<Vec<u8>> = gray.chunks(28).map(|r| r.to_vec()).collect();
    for body in [json!({ "pixels": gray }), json!({ "pixels": rows }), json!(gray)] {
        let (status, out) = http(
            &s.addr,
            "POST",
            "/api/predict",
            Some("application/json"),
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
        assert_eq!(json_of(&out)["class"], 1);
    }
}

#[test]
fn bad_requests_get_4xx_json_and_the_server_keeps_serving() {
    let s = serve();
    let big = vec![b'x'; 5 << 20];
    // method, path, content type, body, expected status, words in the error
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/predict",
            Some("image/png"),
            b"not an image".to_vec(),
            415,
            "neither",
        ),
        (
            "POST",
            "/api/predict",
            None,
            b"\x89PNG\r\n\x1a\ntruncated".to_vec(),
            400,
            "decode",
        ),
        (
            "POST",
            "/api/predict",
            Some("application/json"),
            b"{\"pixels\": [1, 2,".to_vec(),
            400,
            "bad json",
        ),
        (
            "POST",
            "/api/predict",
            Some("application/json"),
            b"{\"pixels\": [1, 2]}".to_vec(),
            400,
            "784",
        ),
        (
            "POST",
            "/api/predict",
            Some("application/json"),
            b"{\"other\": 1}".to_vec(),
            400,
            "bad json",
        ),
        (
            "POST",
            "/api/predict",
            Some("application/json"),
            json!({ "pixels": vec![300; 784] }).to_string().into_bytes(),
            400,
            "outside 0-255",
        ),
        (
            "POST",
            "/api/predict",
            Some("application/json"),
            json!({ "pixels": vec![vec![0; 27]; 28] })
                .to_string()
                .into_bytes(),
            400,
            "28 rows",
        ),
        (
            "POST",
            "/api/predict",
            Some("image/png"),
            Vec::new(),
            400,
            "empty body",
        ),
        ("POST", "/api/predict", Some("image/png"), big, 413, "limit"),
        ("GET", "/api/predict", None, Vec::new(), 405, "use post"),
        ("PUT", "/api/health", None, b"x".to_vec(), 405, "use get"),
        ("DELETE", "/", None, Vec::new(), 405, "use get"),
        ("GET", "/etc/passwd", None, Vec::new(), 404, "no such page"),
    ];
    for (method, path, kind, body, want, says) in cases {
        let (status, out) = http(&s.addr, method, path, kind, &body);
        let text = String::from_utf8_lossy(&out).to_lowercase();
        assert_eq!(status, want, "{method} {path}: {text}");
        let err = json_of(&out);
        assert!(
            err["error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains(says)),
            "{method} {path}: {text} lacks {says:?}"
        );
    }
    // a connection that sends garbage instead of HTTP
    let mut raw = TcpStream::connect(&s.addr).unwrap();
    let _ = raw.write_all(b"\x00\x01\x02 garbage\r\n\r\n");
    drop(raw);
    let (status, _) = http(&s.addr, "GET", "/api/health", None, b"");
    assert_eq!(status, 200, "the server stopped serving");
}

/// A free TCP port on loopback (for chromedriver).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// WebDriver call on chromedriver: (status, JSON value).
fn wd(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let kind = (!bytes.is_empty()).then_some("application/json");
    let (status, out) = http(addr, method, path, kind, &bytes);
    let v = json_of(&out);
    assert_eq!(status, 200, "{method} {path}: {v}");
    v["value"].clone()
}

#[test]
#[ignore = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"]
fn the_page_reads_a_digit_drawn_in_headless_chromium() {
    let (Some(chromium), Some(driver)) = (
        find("chromium").or_else(|| find("chromium-browser")),
        find("chromedriver"),
    ) else {
        panic!("no chromium or chromedriver on PATH: install chromium and chromium-driver");
    };
    let s = serve();
    let port = free_port();
    let mut driver = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _driver = Kill(&mut driver);
    let wd_addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&wd_addr).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let session = wd(
        &wd_addr,
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"]
        }}}})),
    );
    let id = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_string();
    let sp = |p: &str| format!("/session/{id}{p}");
    wd(
        &wd_addr,
        "POST",
        &sp("/url"),
        Some(json!({"url": format!("http://{}/", s.addr)})),
    );
    let elem = |css: &str| {
        let e = wd(
            &wd_addr,
            "POST",
            &sp("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        e["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {e}"))
            .to_string()
    };
    let pad = elem("#pad");
    let origin = json!({"element-6066-11e4-a52e-4f735466cecf": pad});
    // a "1": one vertical stroke down the middle of the pad, in small steps
    let mut actions = vec![
        json!({"type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": -95}),
        json!({"type": "pointerDown", "button": 0}),
    ];
    for step in 1..=19 {
        actions.push(
            json!({"type": "pointerMove", "duration": 10, "origin": origin, "x": 0, "y": -95 + 10 * step}),
        );
    }
    actions.push(json!({"type": "pointerUp", "button": 0}));
    wd(
        &wd_addr,
        "POST",
        &sp("/actions"),
        Some(json!({"actions": [{"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"}, "actions": actions}]})),
    );
    let prediction = elem("#prediction");
    // the prediction's text once it is no longer `not` (or after 20 s)
    let shown_after = |not: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = wd(&wd_addr, "GET", &sp(&format!("/element/{prediction}/text")), None);
            let text = text.as_str().unwrap_or("").to_string();
            if text != not && !text.is_empty() || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let shown = shown_after("?");
    // the feature maps are drawn too: 6 C1 canvases
    let c1 = wd(
        &wd_addr,
        "POST",
        &sp("/elements"),
        Some(json!({"using": "css selector", "value": "#c1 canvas"})),
    );
    // the screenshot is the test's artifact
    let shot = wd(&wd_addr, "GET", &sp("/screenshot"), None);
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
    std::fs::write(&artifact, &png).unwrap();
    eprintln!("screenshot: {}", artifact.display());

    // Clear empties the page; uploading a PNG file is read the same way
    let clear = elem("#clear");
    wd(
        &wd_addr,
        "POST",
        &sp(&format!("/element/{clear}/click")),
        Some(json!({})),
    );
    let cleared = wd(&wd_addr, "GET", &sp(&format!("/element/{prediction}/text")), None);
    let upload = Path::new(env!("CARGO_TARGET_TMPDIR")).join("upload-one.png");
    std::fs::write(&upload, one_png()).unwrap();
    let file = elem("#file");
    wd(
        &wd_addr,
        "POST",
        &sp(&format!("/element/{file}/value")),
        Some(json!({"text": upload.display().to_string()})),
    );
    let uploaded = shown_after("?");
    let status = elem("#status");
    let status = wd(&wd_addr, "GET", &sp(&format!("/element/{status}/text")), None);

    let _ = wd(&wd_addr, "DELETE", &sp(""), None);
    assert_eq!(shown, "1", "the page read the stroke as {shown:?}");
    assert_eq!(c1.as_array().map(|a| a.len()), Some(6), "C1 maps not drawn");
    assert_eq!(cleared, "?", "Clear left {cleared}");
    assert_eq!(uploaded, "1", "the uploaded image was read as {uploaded:?}");
    assert!(status.as_str().is_some_and(|t| t.contains("image")), "{status}");
}

/// The seconds `/api/health` takes to answer, at most `within` (else the test fails).
fn health_within(addr: &str, within: Duration) -> f64 {
    let start = Instant::now();
    let (status, _) = http(addr, "GET", "/api/health", None, b"");
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(took < within, "/api/health took {took:?} (limit {within:?})");
    took.as_secs_f64()
}

/// Clients that stall cannot stop the server: two uploads that announce 4 MB and
/// send nothing, and a chunked body at one byte every 100 ms, hold no thread; the
/// health check keeps answering within a second; the stalled upload gets 408 when
/// its body timeout runs out.
#[test]
fn stalled_and_slow_uploads_do_not_stop_the_server() {
    let s = serve();
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    let mut slow = TcpStream::connect(&s.addr).unwrap();
    slow.write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut worst: f64 = 0.0;
    for _ in 0..20 {
        let _ = slow.write_all(b"1\r\nx\r\n");
        worst = worst.max(health_within(&s.addr, Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("health while stalled: worst {:.1} ms", worst * 1e3);
    // the stalled upload's body timeout (10 s) ends it with 408
    let mut first = stalled.into_iter().next().unwrap();
    first.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 408", "{}", String::from_utf8_lossy(&head));
    health_within(&s.addr, Duration::from_secs(1));
}

/// Past `--max-connections`, a new connection gets 503 with Retry-After and is
/// closed; the server serves again as soon as connections close.
#[test]
fn a_connection_flood_past_the_limit_gets_503() {
    let s = serve_with(&["--max-connections", "16"]);
    let held: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(&s.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(&s.addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    health_within(&s.addr, Duration::from_secs(1));
}

/// An 8192 x 8192 PNG (a few kB compressed) is refused from its header, before
/// any pixel is decoded; the server stays responsive.
#[test]
fn a_huge_image_is_refused_before_decoding() {
    let s = serve();
    let img = image::GrayImage::new(8192, 8192);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let start = Instant::now();
    let (status, body) = http(&s.addr, "POST", "/api/predict", Some("image/png"), &png);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(json_of(&body)["error"].as_str().unwrap().contains("8192x8192"));
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    health_within(&s.addr, Duration::from_secs(1));
}

/// SIGTERM while a request is in flight: the request finishes with its answer,
/// new connections are refused, and the process exits 0.
#[cfg(unix)]
#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let mut s = serve();
    let png = one_png();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        png.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&png[..png.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&png[png.len() / 2..]).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"class\":1"), "{answer}");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(&s.addr).is_err(),
        "still listening after shutdown"
    );
}
