//! [`set_isa`] on one thread while others run the lanes convolutions: a kernel
//! call reads the instruction set once and finishes on it (its plane width and
//! its code agree), so every result has the bits that AVX2 and AVX-512 share and
//! nothing panics. The switch matters only between register widths, so this
//! needs both AVX2 and AVX-512; a CPU without them is reported as skipped.
//!
//! (Its own test binary: the instruction set is a process-wide setting.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{conv_passes, table, PASSES};
use tensor_ops::conv::ConvShape;
use tensor_ops::{set_isa, Algo, Isa};

/// Sets the flag when dropped: the switching thread stops even if a kernel
/// call panics (else the scope would wait for it forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn switching_the_instruction_set_between_widths_changes_no_result() {
    if !(Isa::Avx2.is_supported() && Isa::Avx512.is_supported()) {
        let line = format!(
            "SKIPPED: switching between register widths needs AVX2 and AVX-512; this CPU supports {:?}",
            Isa::supported()
        );
        common::note("set_isa test", &line);
        return;
    }
    // C3 with its table at two groups of 16: the lanes kernels, on the threads
    let s = ConvShape::square(32, 6, 14, 16, 5);
    let t = table(16, 6, 0x5DEECE66D);
    let x = common::values(s.x_len(), 1);
    let w = common::values(s.w_len(), 2);
    let b = common::values(s.out_c, 3);
    let dy = common::values(s.y_len(), 4);
    let run = || conv_passes(Algo::Parallel, &s, Some(&t), &x, &w, &b, &dy);
    set_isa(Isa::Avx2).unwrap();
    let want = run();
    let bits = |passes: &[Vec<f32>; 7]| -> Vec<Vec<u32>> {
        passes
            .iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    set_isa(Isa::Avx512).unwrap();
    assert!(
        bits(&run()) == bits(&want),
        "AVX2 and AVX-512 differ with no switching"
    );

    let stop = AtomicBool::new(false);
    let (mut calls, mut switches) = (0, 0u64);
    std::thread::scope(|scope| {
        let switcher = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let isa = [Isa::Avx2, Isa::Avx512][(switches % 2) as usize];
                set_isa(isa).unwrap();
                switches += 1;
                std::thread::yield_now();
            }
        });
        let _stop = StopOnDrop(&stop);
        for round in 0..300 {
            let (got, want) = (bits(&run()), bits(&want));
            for (pass, (got, want)) in PASSES.iter().zip(got.iter().zip(&want)) {
                assert!(
                    got == want,
                    "round {round}: {pass} changed with set_isa switching"
                );
            }
            calls += 1;
        }
        drop(_stop);
        switcher.join().unwrap();
    });
    common::note(
        "set_isa test",
        &format!("{calls} rounds of C3's passes, {switches} switches"),
    );
    assert!(switches > 0, "the instruction set was never switched");
}
