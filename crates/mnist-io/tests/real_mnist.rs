//! Checks against the real MNIST files, `#[ignore]`d because they need them (CI
//! imports them first and runs these with `cargo test -- --ignored`):
//! counts, first labels, checksums, and a real download over loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use mnist_io::{
    download::download, idx::gzip, import_dir, verify_dir, DatasetKind, FileOutcome, InputSpec, NoProgress,
    TrainTest,
};

/// The verified MNIST of `LENET_DATA_DIR` or `data/mnist`; panics with how to get
/// it when absent (these tests are `#[ignore]`d for that reason).
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LENET_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    if let Err(e) = verify_dir(&dir, DatasetKind::Mnist) {
        panic!(
            "no verified MNIST in {}: {e}; run `cargo xtask fetch-mnist` (offline: --from DIR)",
            dir.display()
        );
    }
    Some(dir)
}

#[test]
#[ignore = "needs the real MNIST in data/mnist: cargo xtask fetch-mnist (offline: --from DIR)"]
fn real_mnist_counts_labels_and_input() {
    let Some(dir) = data_dir() else { return };
    let data = TrainTest::load(&dir, DatasetKind::Mnist).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!((data.train.rows(), data.train.cols()), (28, 28));
    assert_eq!(data.train.label(0), 5);
    assert_eq!(data.test.label(0), 7);
    // The paper says its scaling gives "mean roughly 0 and variance roughly 1"; measured over
    // the padded 32x32 inputs of the first 1,000 images: mean 0.025, variance 0.12.
    let x = InputSpec::default()
        .batch(&data.train, &(0..1000).collect::<Vec<_>>())
        .unwrap();
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(
        mean.abs() < 0.05 && (0.1..0.15).contains(&var),
        "mean {mean}, var {var}"
    );
    assert!(x.iter().all(|&v| (-0.1..=1.175).contains(&v)));
}

#[test]
#[ignore = "needs the real MNIST in data/mnist: cargo xtask fetch-mnist (offline: --from DIR)"]
fn import_skips_what_is_verified_and_refuses_a_damaged_copy() {
    let Some(dir) = data_dir() else { return };
    let dst = tempfile::tempdir().unwrap();
    let report = import_dir(&dir, dst.path(), DatasetKind::Mnist, &mut NoProgress).unwrap();
    assert!(report
        .files
        .iter()
        .all(|(_, o)| matches!(o, FileOutcome::Imported(_))));
    let again = import_dir(&dir, dst.path(), DatasetKind::Mnist, &mut NoProgress).unwrap();
    assert!(again.files.iter().all(|(_, o)| *o == FileOutcome::AlreadyPresent));

    // A source with a truncated test-label file: refused, and nothing of it left behind.
    let src = tempfile::tempdir().unwrap();
    for spec in DatasetKind::Mnist.files() {
        let bytes = std::fs::read(dir.join(spec.name)).unwrap();
        let bytes = if spec.name == "t10k-labels-idx1-ubyte" {
            bytes[..bytes.len() - 1].to_vec()
        } else {
            bytes
        };
        std::fs::write(src.path().join(spec.name), bytes).unwrap();
    }
    let dst2 = tempfile::tempdir().unwrap();
    let err = import_dir(src.path(), dst2.path(), DatasetKind::Mnist, &mut NoProgress).unwrap_err();
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dst2.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        3,
        "the three good files, nothing of the bad one: {left:?}"
    );
    assert!(!dst2.path().join("t10k-labels-idx1-ubyte").exists());
}

/// Serves `<name>.gz` for each MNIST file on loopback: labels gzip-compressed,
/// images raw (the downloader detects which from the bytes). `damage` truncates
/// every file, as a broken mirror would.
fn serve(dir: PathBuf, damage: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // drain the headers
            let mut h = String::new();
            while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
                h.clear();
            }
            let name = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("");
            let raw = name
                .strip_suffix(".gz")
                .map(|n| dir.join(n))
                .and_then(|p| std::fs::read(p).ok());
            let response = match raw {
                Some(mut bytes) => {
                    if damage {
                        bytes.truncate(bytes.len() / 2);
                    }
                    if name.contains("labels") {
                        bytes = gzip(&bytes);
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        bytes.len()
                    );
                    [head.into_bytes(), bytes].concat()
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{addr}/mnist/")
}

#[test]
#[ignore = "needs the real MNIST in data/mnist: cargo xtask fetch-mnist (offline: --from DIR)"]
fn download_from_a_loopback_mirror_after_a_broken_one() {
    let Some(dir) = data_dir() else { return };
    let broken = serve(dir.clone(), true);
    let good = serve(dir.clone(), false);
    let dst = tempfile::tempdir().unwrap();
    let report = download(
        dst.path(),
        DatasetKind::Mnist,
        &[broken, good.clone()],
        &mut NoProgress,
    )
    .unwrap();
    for (spec, outcome) in &report.files {
        assert_eq!(
            *outcome,
            FileOutcome::Downloaded(format!("{good}{}.gz", spec.name))
        );
    }
    verify_dir(dst.path(), DatasetKind::Mnist).unwrap();
    let files: Vec<_> = std::fs::read_dir(dst.path()).unwrap().collect();
    assert_eq!(files.len(), 4, "no temporary files left");
}
