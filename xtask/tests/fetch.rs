//! `cargo xtask` as a user runs it: the task list, and fetch-mnist refusing bad
//! sources without leaving anything half-copied.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test stops at the first surprise

use std::path::{Path, PathBuf};
use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

fn mnist_source() -> Option<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/mnist");
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
    [shared, local]
        .into_iter()
        .find(|d| d.join("train-labels-idx1-ubyte.gz").exists() || d.join("train-labels-idx1-ubyte").exists())
}

#[test]
fn no_arguments_lists_the_tasks() {
    let out = xtask(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("fetch-mnist"));
}

#[test]
#[ignore = "needs the MNIST .gz files in ../shared/datasets/mnist or data/mnist"]
fn a_truncated_source_file_is_refused_and_nothing_is_left() {
    let src = mnist_source().expect("no MNIST files in ../shared/datasets/mnist or data/mnist");
    let bad = tempfile::tempdir().unwrap();
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let from = [src.join(f), src.join(format!("{f}.gz"))]
            .into_iter()
            .find(|p| p.exists())
            .unwrap();
        let mut bytes = std::fs::read(&from).unwrap();
        if f == "train-labels-idx1-ubyte" {
            bytes.truncate(bytes.len() - 100);
        }
        std::fs::write(bad.path().join(from.file_name().unwrap()), bytes).unwrap();
    }
    let dst = tempfile::tempdir().unwrap();
    let out = xtask(&[
        "fetch-mnist",
        "--from",
        bad.path().to_str().unwrap(),
        "--dir",
        dst.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("train-labels-idx1-ubyte"), "{stderr}");
    assert!(!dst.path().join("train-labels-idx1-ubyte").exists());
    assert!(std::fs::read_dir(dst.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));

    let good = tempfile::tempdir().unwrap();
    let out = xtask(&[
        "fetch-mnist",
        "--from",
        src.to_str().unwrap(),
        "--dir",
        good.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 files verified"));
}
