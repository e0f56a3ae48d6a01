//! Every instruction set this CPU supports ([`Isa::supported`]) against the naive
//! kernels, and the FMA paths (AVX2, AVX-512) against each other bit for bit.
//!
//! The instruction set is a process-wide setting, so everything runs in one test
//! function, one set after the other. (CI also runs `variants.rs` under each set
//! with `LENET_SIMD`.) A set this CPU lacks is reported on stderr as skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

mod common;

use common::{assert_close, by_groups, conv_passes, table, PASSES};
use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::fc::{self, FcShape};
use tensor_ops::gemm::{gemm_packed, pack_transposed, packed_len};
use tensor_ops::pool::{self, PoolShape};
use tensor_ops::{set_isa, subsample, Activation, Algo, Isa};

/// The convolutions: LeNet's C1 and C3 (with and without a table) at batches
/// around the lanes kernel's groups (half a group, a group, a group and a part),
/// and other geometries (padding, 3 x 3 and 1 x 1 kernels, odd sizes).
fn conv_cases() -> Vec<(ConvShape, Option<ConnTable>)> {
    let mut cases = Vec::new();
    for batch in [1, 3, 8, 12, 16, 20, 32] {
        cases.push((ConvShape::square(batch, 1, 32, 6, 5), None));
        cases.push((ConvShape::square(batch, 6, 14, 16, 5), None));
        cases.push((
            ConvShape::square(batch, 6, 14, 16, 5),
            Some(table(16, 6, 0x5DEECE66D)),
        ));
    }
    for (batch, in_c, in_h, in_w, out_c, k, pad) in [
        (9, 3, 7, 11, 5, 3, 1),
        (17, 2, 9, 6, 4, 5, 2),
        (24, 4, 5, 5, 7, 1, 0),
        (10, 5, 12, 8, 3, 4, 0),
    ] {
        let s = ConvShape {
            batch,
            in_c,
            in_h,
            in_w,
            out_c,
            k,
            pad,
        };
        cases.push((s, None));
        cases.push((s, Some(table(out_c, in_c, 0xC0FFEE ^ batch as u64))));
    }
    cases
}

/// Every kernel's outputs on every case, under the instruction set in use, named;
/// with `magnitudes`, on the absolute values of every operand instead (the naive
/// kernels then give each output's sum of absolute terms: `assert_close`).
fn outputs(algo: Algo, magnitudes: bool) -> Vec<(String, Vec<f32>)> {
    let values = |len: usize, seed: u64| {
        let v = common::values(len, seed);
        if magnitudes {
            common::abs(&v)
        } else {
            v
        }
    };
    let mut out = Vec::new();
    for (s, t) in conv_cases() {
        let t = t.as_ref();
        let x = values(s.x_len(), 1);
        let mut w = values(s.w_len(), 2);
        if let Some(t) = t {
            t.mask_weights(&mut w);
        }
        let (b, dy) = (values(s.out_c, 3), values(s.y_len(), 4));
        for (name, v) in PASSES.iter().zip(conv_passes(algo, &s, t, &x, &w, &b, &dy)) {
            out.push((format!("conv {name} {s:?} table {}", t.is_some()), v));
        }
        // the parallel variant's forward pass interleaved from input to output
        let y = if algo == Algo::Parallel {
            let one = ConvShape { batch: 1, ..s };
            let mut ws = ConvWorkspace::default();
            by_groups(&x, (one.x_len(), one.y_len()), |x, y, count| {
                conv::forward_interleaved(&s, t, x, &w, &b, y, count, &mut ws)
            })
        } else {
            conv_passes(algo, &s, t, &x, &w, &b, &dy)[0].clone()
        };
        out.push((format!("interleaved conv y {s:?} table {}", t.is_some()), y));
    }
    for (batch, in_f, out_f) in [
        (1, 400, 120),
        (7, 120, 84),
        (32, 84, 10),
        (130, 400, 120),
        (65, 33, 50),
    ] {
        let s = FcShape { batch, in_f, out_f };
        let (x, w, b, dy) = (
            values(batch * in_f, 5),
            values(out_f * in_f, 6),
            values(out_f, 7),
            values(batch * out_f, 8),
        );
        let mut y = vec![0.0; batch * out_f];
        fc::forward(algo, &s, &x, &w, &b, &mut y, &mut fc::FcWorkspace::default());
        let mut dx = vec![0.0; batch * in_f];
        fc::x_backward(algo, &s, &w, &dy, &mut dx);
        let (mut dw, mut db) = (vec![0.0; out_f * in_f], vec![0.0; out_f]);
        fc::weight_backward(algo, &s, &x, &dy, &mut dw, &mut db);
        let y_interleaved = if algo == Algo::Parallel {
            by_groups(&x, (in_f, out_f), |x, y, count| {
                fc::forward_interleaved(&s, x, &w, &b, y, count)
            })
        } else {
            y.clone()
        };
        for (name, v) in [
            ("y", y),
            ("dx", dx),
            ("dw", dw),
            ("db", db),
            ("y interleaved", y_interleaved),
        ] {
            out.push((format!("fc {name} {s:?}"), v));
        }
    }
    // the packed micro-kernel on its own, every tile edge
    for (m, k, n) in [(1, 1, 1), (9, 17, 25), (13, 400, 120), (8, 84, 48), (3, 5, 100)] {
        let (a, w, bias) = (values(m * k, 9), values(n * k, 10), values(n, 11));
        let mut packed = vec![0.0; packed_len(k, n)];
        pack_transposed(&w, n, k, &mut packed);
        let mut c = vec![0.0; m * n];
        gemm_packed(&a, m, k, k, &packed, n, &bias, &mut c, n);
        out.push((format!("gemm_packed {m}x{k}x{n}"), c));
    }
    // element-wise kernels, on values wide enough to saturate the tanh
    let a: Vec<f32> = values(1000, 12).iter().map(|v| v * 9.0).collect();
    let g = values(1000, 13);
    for act in Activation::ALL {
        let mut y = vec![0.0; a.len()];
        act.forward(&a, &mut y);
        let mut da = vec![0.0; a.len()];
        act.backward(&a, &y, &g, &mut da);
        out.push((format!("{} forward", act.name()), y));
        out.push((format!("{} backward", act.name()), da));
    }
    for s in [
        PoolShape {
            batch: 5,
            c: 6,
            h: 28,
            w: 28,
        },
        PoolShape {
            batch: 3,
            c: 16,
            h: 10,
            w: 10,
        },
        PoolShape {
            batch: 3,
            c: 4,
            h: 9,
            w: 7,
        },
    ] {
        let (x, dy, k, bias) = (
            values(s.x_len(), 14),
            values(s.y_len(), 15),
            values(s.c, 16),
            values(s.c, 17),
        );
        let mut y = vec![0.0; s.y_len()];
        pool::avg_forward(&s, &x, &mut y);
        out.push((format!("avg pool {s:?}"), y.clone()));
        let mut dx = vec![0.0; s.x_len()];
        pool::avg_x_backward(&s, &dy, &mut dx);
        out.push((format!("avg pool dx {s:?}"), dx));
        let mut argmax = vec![0u8; s.y_len()];
        pool::max_forward(&s, &x, &mut y, &mut argmax);
        out.push((format!("max pool {s:?}"), y.clone()));
        subsample::forward(&s, &x, &k, &bias, &mut y);
        if algo == Algo::Parallel {
            let one = PoolShape { batch: 1, ..s };
            let y_interleaved = by_groups(&x, (one.x_len(), one.y_len()), |x, y_group, _| {
                subsample::forward_interleaved(&s, x, &k, &bias, y_group)
            });
            out.push((format!("subsample interleaved {s:?}"), y_interleaved));
        } else {
            out.push((format!("subsample interleaved {s:?}"), y.clone()));
        }
        out.push((format!("subsample {s:?}"), y));
        let mut dx = vec![0.0; s.x_len()];
        subsample::x_backward(&s, &k, &dy, &mut dx);
        out.push((format!("subsample dx {s:?}"), dx));
        let (mut dk, mut db) = (vec![0.0; s.c], vec![0.0; s.c]);
        subsample::weight_backward(&s, &x, &dy, &mut dk, &mut db);
        out.push((format!("subsample dk {s:?}"), dk));
    }
    out
}

fn note(line: &str) {
    common::note("isa test", line)
}

#[test]
fn every_instruction_set_matches_naive_and_fma_paths_agree_bit_for_bit() {
    let naive = outputs(Algo::Naive, false);
    let magnitude = outputs(Algo::Naive, true);
    let mut fma_results: Vec<(Isa, Vec<Vec<f32>>)> = Vec::new();
    for isa in Isa::ALL {
        if !isa.is_supported() {
            note(&format!("SKIPPED {isa}: this CPU does not support it"));
            continue;
        }
        set_isa(isa).unwrap();
        for algo in [Algo::Im2col, Algo::Parallel] {
            let fast = outputs(algo, false);
            for (((name, f), (_, n)), (_, m)) in fast.iter().zip(&naive).zip(&magnitude) {
                assert_close(&format!("{isa} {algo:?} {name}"), f, n, m).unwrap();
            }
            if isa != Isa::Portable && algo == Algo::Parallel {
                fma_results.push((isa, fast.into_iter().map(|(_, v)| v).collect()));
            }
        }
        note(&format!("{isa}: every kernel matches the naive loops"));
    }
    set_isa(Isa::best()).unwrap();
    match fma_results.as_slice() {
        [(first, a), (second, b)] => {
            for (((name, _), x), y) in naive.iter().zip(a).zip(b) {
                let (x, y): (Vec<u32>, Vec<u32>) = (
                    x.iter().map(|v| v.to_bits()).collect(),
                    y.iter().map(|v| v.to_bits()).collect(),
                );
                assert!(x == y, "{name}: {first} and {second} differ in their bits");
            }
            note(&format!("{first} and {second} give the same bits"));
        }
        _ => note("SKIPPED the AVX2 = AVX-512 bit comparison: this CPU lacks one of them"),
    }
}
