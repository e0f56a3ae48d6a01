//! The same model on every instruction set: the same short training runs under
//! each path this CPU supports (`LENET_SIMD`), compared byte for byte.
//!
//! AVX2 and AVX-512 must give identical model files. The portable path rounds
//! its multiply-adds twice (no FMA to count on), so it is checked to train
//! (finite, close loss) but not for identical bytes. A path this CPU lacks is
//! reported on stderr as skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{data_dir, text};

fn note(line: &str) {
    // straight to stderr, past the test harness's capture: a skipped path is seen
    let _ = writeln!(std::io::stderr(), "isa test: {line}");
}

/// `lenet info --json`'s list of supported instruction sets.
fn supported() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Trains with `extra` flags under `LENET_SIMD=isa` into `out`; returns the model
/// file's bytes and the run's config.json.
fn train(isa: &str, data: &Path, out: &Path, extra: &[&str]) -> (Vec<u8>, serde_json::Value) {
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--seed",
        "3",
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .env("LENET_SIMD", isa)
        .args(&args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{isa} {extra:?}: {stdout}{stderr}");
    let config = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    (std::fs::read(out.join("model.safetensors")).unwrap(), config)
}

#[test]
fn every_instruction_set_trains_the_same_model() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let supported = supported();
    for isa in ["portable", "avx2", "avx512"] {
        if !supported.iter().any(|s| s == isa) {
            note(&format!("SKIPPED {isa}: this CPU does not support it"));
        }
    }
    // batch 1 (im2col and gemm.rs's products, SDLM) and batch 32 (the lanes kernel
    // and the packed FC micro-kernel, two halves of the batch side by side)
    let runs: [(&str, &[&str]); 2] = [
        ("batch1", &["--limit", "300", "--threads", "1"]),
        (
            "batch32",
            &[
                "--limit",
                "1000",
                "--batch-size",
                "32",
                "--lr",
                "0.004",
                "--threads",
                "2",
            ],
        ),
    ];
    for (name, extra) in runs {
        let mut fma: Vec<(String, Vec<u8>)> = Vec::new();
        for isa in &supported {
            let (model, config) = train(isa, &data, &tmp.path().join(format!("{name}-{isa}")), extra);
            assert_eq!(config["isa"], isa.as_str(), "config.json records the path");
            if isa != "portable" {
                fma.push((isa.clone(), model));
            }
        }
        for pair in fma.windows(2) {
            assert!(
                pair[0].1 == pair[1].1,
                "{name}: {} and {} trained different model files",
                pair[0].0,
                pair[1].0
            );
            note(&format!(
                "{name}: {} and {} model files are identical",
                pair[0].0, pair[1].0
            ));
        }
        if fma.len() < 2 {
            note(&format!(
                "SKIPPED {name}: AVX2 against AVX-512 needs both; this CPU supports {supported:?}"
            ));
        }
    }
    // a path the CPU lacks, or an unknown one, is refused by name
    let bad = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .env("LENET_SIMD", "sse9")
        .args(["info"])
        .output()
        .unwrap();
    common::assert_clean_failure(&bad, "unknown instruction set \"sse9\"");
    if !supported.iter().any(|s| s == "avx512") {
        let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
            .env("LENET_SIMD", "avx512")
            .args(["info"])
            .output()
            .unwrap();
        common::assert_clean_failure(&out, "does not support avx512");
    }
}
