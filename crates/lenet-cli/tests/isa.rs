//! The same model on every instruction set: the same short training runs under
//! each path this CPU supports (`LENET_SIMD`), compared byte for byte.
//!
//! AVX2 and AVX-512 must give identical model files. The portable path rounds
//! its multiply-adds twice (no FMA to count on), so it is checked to train
//! (finite, close loss) but not for identical bytes. A path this CPU lacks is
//! reported on stderr as skipped. Four short runs are also pinned to the model
//! bytes they trained when the shipped models were trained, so that a change in
//! any kernel's order of summation shows.

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

/// A short run at batch 1: im2col and `gemm.rs`'s products, SDLM.
const BATCH_1: &[&str] = &["--limit", "300", "--threads", "1"];

/// A short run at batch 32: the lanes kernel and the packed FC micro-kernel, two
/// halves of the batch side by side.
const BATCH_32: &[&str] = &[
    "--limit",
    "1000",
    "--batch-size",
    "32",
    "--lr",
    "0.004",
    "--threads",
    "2",
];

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
    let runs: [(&str, &[&str]); 2] = [("batch1", BATCH_1), ("batch32", BATCH_32)];
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

/// FNV-1a, 64 bits: a fingerprint of a model's tensor bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The tensor bytes of a safetensors file: what follows its JSON header (the
/// header's metadata records the settings, which may gain fields).
fn tensor_bytes(file: &[u8]) -> &[u8] {
    let header = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    &file[8 + header..]
}

/// The models that short runs train, pinned to the bytes they had when the
/// shipped models were trained. Every kernel fixes the order of its sums, so a
/// change that reorders one (and still passes the tolerance tests against the
/// naive kernels) changes these bytes, and the shipped models would no longer
/// retrace. Run on the FMA paths, which agree with each other; the portable path
/// rounds differently and is skipped. If a change of order is intended, retrain
/// the shipped models (docs/results.md) and record the new fingerprints here.
#[test]
fn short_runs_train_the_pinned_models() {
    let supported = supported();
    let Some(isa) = ["avx512", "avx2"]
        .into_iter()
        .find(|isa| supported.iter().any(|s| s == isa))
    else {
        note(&format!(
            "SKIPPED pinned models: they are pinned on the FMA paths; this CPU supports {supported:?}"
        ));
        return;
    };
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let runs: [(&str, &[&str], u64); 4] = [
        ("batch 1", BATCH_1, 0xa5807abc23c6902c),
        ("batch 32", BATCH_32, 0xb20cd7728778b14c),
        (
            "naive kernels",
            &["--limit", "100", "--threads", "1", "--kernels", "naive"],
            0xf7c412e5a06cd78a,
        ),
        (
            "im2col kernels, batch 4",
            &[
                "--limit",
                "300",
                "--batch-size",
                "4",
                "--lr",
                "0.001",
                "--threads",
                "2",
                "--kernels",
                "im2col",
            ],
            0xbcb2413e948677e6,
        ),
    ];
    let mut changed = Vec::new();
    for (name, extra, pinned) in runs {
        let (model, _) = train(isa, &data, &tmp.path().join(name.replace(' ', "-")), extra);
        let fingerprint = fnv1a(tensor_bytes(&model));
        if fingerprint != pinned {
            changed.push(format!("{name}: {fingerprint:#018x}, pinned {pinned:#018x}"));
        }
    }
    assert!(
        changed.is_empty(),
        "({isa}) the models' bytes changed: {changed:#?}"
    );
    note(&format!(
        "the 4 pinned models trained again byte for byte ({isa})"
    ));
}
