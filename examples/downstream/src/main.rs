//! A dependent of `tensor-ops` built with no flags: it must get the fastest
//! instruction set the CPU has, chosen at run time, and the same results as the
//! portable path to float rounding. Prints the instruction set and how much
//! faster than the portable path it ran C3's forward pass at batch 32.

use std::time::Instant;

use tensor_ops::conv::{self, ConvShape, ConvWorkspace};
use tensor_ops::{isa, set_isa, Algo, Isa};

/// C3's forward pass at batch 32 under `with`, and the seconds per pass (best of 20).
fn c3_forward(with: Isa) -> (Vec<f32>, f64) {
    set_isa(with).expect("a supported instruction set");
    let s = ConvShape::square(32, 6, 14, 16, 5);
    let x: Vec<f32> = (0..s.x_len()).map(|i| (i as f32 * 0.37).sin()).collect();
    let w: Vec<f32> = (0..s.w_len()).map(|i| (i as f32 * 0.11).cos() * 0.2).collect();
    let b = vec![0.1; s.out_c];
    let mut y = vec![0.0; s.y_len()];
    let mut ws = ConvWorkspace::default();
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        conv::forward(Algo::Parallel, &s, None, &x, &w, &b, &mut y, &mut ws);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (y, best)
}

fn main() {
    let chosen = isa();
    println!("instruction set chosen at run time: {chosen} (supported: {:?})", Isa::supported());
    assert_eq!(chosen, Isa::best(), "a default build must run the best instruction set");
    if Isa::Avx2.is_supported() {
        assert_ne!(chosen, Isa::Portable, "this CPU has AVX2: the portable path is not the fast path");
    }
    let (fast, t_fast) = c3_forward(chosen);
    let (portable, t_portable) = c3_forward(Isa::Portable);
    for (a, b) in fast.iter().zip(&portable) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{chosen} {a} vs portable {b}");
    }
    println!(
        "C3 forward, batch 32: {:.1} us on {chosen}, {:.1} us portable ({:.1}x)",
        t_fast * 1e6,
        t_portable * 1e6,
        t_portable / t_fast
    );
}
