//! Helpers shared by the `lenet` binary's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Images in the generated training and test sets.
pub const TRAIN_N: usize = 3000;
/// See [`TRAIN_N`].
pub const TEST_N: usize = 1000;

/// A small MNIST-shaped dataset the tests generate once per test process and write
/// with mnist-io's own IDX writer: digits drawn from a 5x7 font at random cell
/// sizes and slants, sized and centred into 28x28 as MNIST was, with a little noise. `TRAIN_N` training and
/// `TEST_N` test images; test image 0 is a 7 (labels cycle from 7). Learnable in
/// an epoch, so the tests can check that training trains.
pub fn data_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lenet-synthetic-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (images, labels, n, seed) in [
            ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", TRAIN_N, 1),
            (
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
                TEST_N,
                2,
            ),
        ] {
            synthetic_digits(n, seed)
                .write_idx(&dir.join(images), &dir.join(labels))
                .unwrap();
        }
        dir
    })
    .clone()
}

/// The real MNIST for the `#[ignore]`d tests: `LENET_DATA_DIR` or the workspace's
/// `data/mnist` (`cargo xtask fetch-mnist` puts it there). Panics with how to get
/// it when absent: an ignored test that runs must not pass without its data.
pub fn real_mnist_dir() -> PathBuf {
    let dir = std::env::var_os("LENET_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    assert!(
        dir.join("t10k-labels-idx1-ubyte").exists() || dir.join("t10k-labels-idx1-ubyte.gz").exists(),
        "no MNIST in {}: run `cargo xtask fetch-mnist` (or `--from DIR` offline)",
        dir.display()
    );
    dir
}

/// The digits 0-9 in a 5x7 font, one row of bits per line (bit 4 = leftmost).
const FONT: [[u8; 7]; 10] = [
    [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
    [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
    [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
    [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
    [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
    [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
    [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
    [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
    [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
];

/// `n` generated digits (see [`data_dir`]), from a small seeded generator.
pub fn synthetic_digits(n: usize, seed: u64) -> mnist_io::Dataset {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut pixels = Vec::with_capacity(n * 28 * 28);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let digit = (i + 7) % 10;
        labels.push(digit as u8);
        // drawn on a 48x48 canvas at a random cell size and slant, then brought to
        // 28x28 the way MNIST was (and the way `lenet predict` brings pictures)
        let mut canvas = vec![0u8; 48 * 48];
        let (cell_w, cell_h, slant) = (3 + next(3), 3 + next(3), next(3));
        let ink = 200 + next(56) as u8;
        for (r, bits) in FONT[digit].iter().enumerate() {
            let shift = slant * (6 - r) / 3;
            for c in (0..5).filter(|c| bits >> (4 - c) & 1 == 1) {
                for y in 4 + r * cell_h..4 + (r + 1) * cell_h {
                    for x in 4 + shift + c * cell_w..4 + shift + (c + 1) * cell_w {
                        canvas[y * 48 + x] = ink - next(30) as u8;
                    }
                }
            }
        }
        let mut image = mnist_io::preprocess::to_mnist(&canvas, 48, 48).unwrap();
        for _ in 0..10 {
            let p = next(28 * 28);
            image[p] = image[p].max(next(60) as u8);
        }
        pixels.extend(image);
    }
    mnist_io::Dataset::from_parts(pixels, labels, 28, 28).unwrap()
}

pub fn lenet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(args)
        .output()
        .expect("run lenet")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The command failed cleanly: non-zero exit, an `error:` line, no panic or backtrace.
pub fn assert_clean_failure(out: &Output, expect: &str) {
    let (stdout, stderr) = text(out);
    assert!(!out.status.success(), "expected failure, got success: {stdout}");
    assert!(stderr.contains("error"), "no error message: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&expect.to_lowercase()),
        "message lacks {expect:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "panic: {stderr}"
    );
}
