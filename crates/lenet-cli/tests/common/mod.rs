//! Helpers shared by the `lenet` binary's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LENET_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    if dir.join("t10k-labels-idx1-ubyte").exists() || dir.join("t10k-labels-idx1-ubyte.gz").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must import MNIST into {} first",
        dir.display()
    );
    eprintln!("skipping: no MNIST in {}", dir.display());
    None
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
