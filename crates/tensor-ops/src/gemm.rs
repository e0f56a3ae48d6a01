//! Matrix products. [`gemm()`]: `C = A B + beta C` on strided `f32` matrices, checked
//! against the slices and handed to the `gemm` crate (which skips packing for the
//! small matrices LeNet's layers make); `gemm` measured faster than
//! `matrixmultiply` on LeNet's shapes, up to 8x at batch 1. [`gemm_packed`]:
//! `C = A W^T + bias` with `W` packed once per call by [`pack_transposed`], a
//! register-tile micro-kernel that beats the crate from 64 rows on (C5 forward at
//! batch 256: 121-127 against 95-108 GFLOP/s on two threads). Measurements in
//! docs/benchmarks.md.
//!
//! **Same bits on every CPU with FMA.** The `gemm` crate picks its kernel at run
//! time; it is built without its AVX-512 kernels (the workspace leaves out its
//! `x86-v4` feature), so an AVX2 and an AVX-512 machine run the same AVX2+FMA
//! code. Its blocking of the inner dimension depends on the CPU's cache sizes
//! only above 512 terms, so [`gemm()`] hands it at most [`MAX_K`] terms at a time
//! and adds the blocks itself, in order. [`gemm_packed`] sums each value in one
//! chain of multiply-adds in order of `k`, whatever the register width.

use crate::simd::{with_isa, Simd};

/// A strided view of a matrix in a slice: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major `rows x cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `c[m x n] = a[m x k] * b[k x n] + beta * c`, with `c` row-major with row stride `ldc`.
///
/// ```
/// use tensor_ops::gemm::{gemm, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1,2],[3,4]]
/// let mut c = [0.0; 4];
/// gemm(MatRef::new(&a, 2, 2), MatRef::new(&a, 2, 2).t(), 0.0, &mut c, 2);
/// assert_eq!(c, [5.0, 11.0, 11.0, 25.0]); // A A^T
/// ```
pub fn gemm(a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let k = a.cols;
    if k <= MAX_K {
        return gemm_strided(a, b, beta, c, (ldc, 1));
    }
    // the inner dimension in blocks of MAX_K, the first scaling C by beta, the
    // others adding to it
    for (j, k0) in (0..k).step_by(MAX_K).enumerate() {
        let kb = (k - k0).min(MAX_K);
        let a_block = MatRef {
            data: &a.data[k0 * a.cs..],
            cols: kb,
            ..a
        };
        let b_block = MatRef {
            data: &b.data[k0 * b.rs..],
            rows: kb,
            ..b
        };
        gemm_strided(a_block, b_block, if j == 0 { beta } else { 1.0 }, c, (ldc, 1));
    }
}

/// Most terms of one sum that [`gemm()`] gives the `gemm` crate in one call: up to
/// 512 it never splits the sum by the CPU's cache sizes (`gemm-common`'s
/// `kernel_params`: a block of `max(512, L1-derived).min(k)`), so its results do
/// not depend on the CPU. (LeNet's largest, C1's weight gradient at batch 1, sums
/// 784 terms.)
pub const MAX_K: usize = 512;

/// `c = a * b + beta * c` where `c`'s element `(r, j)` is `c[r * c_strides.0 + j * c_strides.1]`.
/// (Row-major or transposed forms of one product measured the same speed: the
/// `gemm` crate reorders them itself.)
fn gemm_strided(a: MatRef, b: MatRef, beta: f32, c: &mut [f32], c_strides: (usize, usize)) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let (crs, ccs) = c_strides;
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(last_index(m, n, crs, ccs) < c.len(), "gemm: C too small");
    if k == 0 {
        for r in 0..m {
            for j in 0..n {
                c[r * crs + j * ccs] *= beta;
            }
        }
        return;
    }
    assert!(last_index(m, k, a.rs, a.cs) < a.data.len(), "gemm: A too small");
    assert!(last_index(k, n, b.rs, b.cs) < b.data.len(), "gemm: B too small");
    // SAFETY: every index the kernel touches, (r * rs + c * cs) for r < rows and
    // c < cols, is at most the last index checked above to lie inside its slice;
    // C is borrowed mutably and cannot alias A or B.
    unsafe {
        // gemm's convention: dst = alpha * dst + beta * lhs * rhs, strides given
        // column stride first; `read_dst = false` means dst is not read at all.
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ccs as isize,
            crs as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            1.0,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        );
    }
}

/// Columns per panel of a [packed](pack_transposed) right-hand operand: three
/// AVX-512 registers, or two passes of three AVX2 registers.
pub const PANEL: usize = 48;

/// Rows of the left operand per micro-tile for registers of `w` lanes: with AVX2,
/// 4 rows x 3 registers = 12 accumulators, 4 broadcasts and 3 loads per 12 FMAs
/// (a 6 x 16 tile, 8 loads per 12 FMAs, measured 53-74 GFLOP/s on one core
/// against 75-88 for this one, on 256 x 400 x 120); AVX-512's 32 registers hold
/// 8 rows x 3 registers.
const fn tile_rows(w: usize) -> usize {
    if w >= 16 {
        8
    } else {
        4
    }
}

/// Values in the packed form of a `k x n` right-hand operand: whole panels.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
}

/// Packs `b = w^T`, where `w` is row-major `n x k` (a layer's `[out, in]` weights),
/// into panels of [`PANEL`] columns: panel `p` holds `b[i][p * PANEL ..][.. PANEL]`
/// for `i` in `0..k`, one row after the other, the columns past `n` zero. So the
/// micro-kernel reads each step's three registers from one contiguous run.
///
/// ```
/// use tensor_ops::gemm::{pack_transposed, packed_len, PANEL};
/// let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3: two outputs of three inputs
/// let mut packed = vec![9.0; packed_len(3, 2)];
/// pack_transposed(&w, 2, 3, &mut packed);
/// assert_eq!(&packed[..2], &[1.0, 4.0]); // b's row 0 = column 0 of w^T
/// assert_eq!(&packed[PANEL..PANEL + 2], &[2.0, 5.0]);
/// assert!(packed[2..PANEL].iter().all(|&v| v == 0.0)); // padding
/// ```
pub fn pack_transposed(w: &[f32], n: usize, k: usize, packed: &mut [f32]) {
    assert_eq!((w.len(), packed.len()), (n * k, packed_len(k, n)));
    if packed.is_empty() {
        return;
    }
    with_isa!(s => pack_transposed_on(s, w, n, k, packed))
}

#[inline(always)]
fn pack_transposed_on<S: Simd>(s: S, w: &[f32], n: usize, k: usize, packed: &mut [f32]) {
    const L: usize = 8;
    let whole = k - k % L;
    for (p, panel) in packed.chunks_exact_mut(PANEL * k).enumerate() {
        let j0 = p * PANEL;
        let whole_panel = j0 + PANEL <= n;
        if whole_panel {
            // a whole panel: 8 inputs at a time, one 8 x 8 register transpose for
            // each group of 8 columns of b (rows of w), 8 rows of the panel written
            // together
            let rows = &w[j0 * k..(j0 + PANEL) * k];
            for i0 in (0..whole).step_by(L) {
                let out = &mut panel[i0 * PANEL..(i0 + L) * PANEL];
                for g in 0..PANEL / L {
                    let block =
                        std::array::from_fn(|j| std::array::from_fn(|v| rows[(g * L + j) * k + i0 + v]));
                    for (i, r) in s.transpose8(block).into_iter().enumerate() {
                        out[i * PANEL + g * L..][..L].copy_from_slice(&r);
                    }
                }
            }
        }
        // the rest value by value: the last inputs, or the last columns then zeros
        let from = if whole_panel { whole } else { 0 };
        for i in from..k {
            for j in 0..PANEL {
                panel[i * PANEL + j] = if j0 + j < n { w[(j0 + j) * k + i] } else { 0.0 };
            }
        }
    }
}

/// `c[m x n] = a[m x k] * b + bias` (`c` overwritten), with `a` row-major (row
/// stride `lda`), `b` [packed](pack_transposed) from `n` columns, `bias` of `n`
/// values added to every row, `c` row-major with row stride `ldc`.
///
/// The micro-kernel keeps a tile of `c` in registers (AVX2: 4 rows x 24 columns in
/// 12 registers; AVX-512: 8 x 48 in 24) while `k` steps stream past (a broadcast
/// value of `a` per row, 3 loads of `b`, 3 FMAs per row); each value of `c` is
/// one chain of multiply-adds in order of `k`, then the bias.
///
/// ```
/// use tensor_ops::gemm::{gemm_packed, pack_transposed, packed_len};
/// let x = [1.0, 2.0, 3.0]; // 1 x 3
/// let w = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]; // two outputs of three inputs
/// let mut packed = vec![0.0; packed_len(3, 2)];
/// pack_transposed(&w, 2, 3, &mut packed);
/// let mut y = [0.0; 2];
/// gemm_packed(&x, 1, 3, 3, &packed, 2, &[0.5, -0.5], &mut y, 2);
/// assert_eq!(y, [4.5, 1.5]); // x w^T + bias
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    packed: &[f32],
    n: usize,
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    assert_eq!((packed.len(), bias.len()), (packed_len(k, n), n));
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && ldc >= n, "gemm_packed: bad strides");
    assert!((m - 1) * ldc + n <= c.len(), "gemm_packed: C too small");
    if k == 0 {
        // an empty sum: the bias alone
        for c_row in c.chunks_mut(ldc).take(m) {
            c_row[..n].copy_from_slice(bias);
        }
        return;
    }
    assert!((m - 1) * lda + k <= a.len(), "gemm_packed: A too small");
    with_isa!(s => gemm_packed_on(s, (a, m, k, lda), packed, bias, (c, ldc)))
}

/// [`gemm_packed`] with token `s`, its arguments checked.
#[inline(always)]
fn gemm_packed_on<S: Simd>(
    s: S,
    (a, m, k, lda): (&[f32], usize, usize, usize),
    packed: &[f32],
    bias: &[f32],
    (c, ldc): (&mut [f32], usize),
) {
    let n = bias.len();
    let tile_rows = tile_rows(S::W);
    // columns per pass over a panel: three registers
    let pass = 3 * S::W;
    // rows outside: a tile's rows of `a` (k values each) stay in L1 while the
    // panels stream from L2
    for r0 in (0..m).step_by(tile_rows) {
        let rows = (m - r0).min(tile_rows);
        let a = &a[r0 * lda..];
        for (p, panel) in packed.chunks_exact(PANEL * k).enumerate() {
            // the panel's live columns in passes of three registers (or fewer,
            // for the last columns)
            for c0 in (p * PANEL..n.min((p + 1) * PANEL)).step_by(pass) {
                let cols = (n - c0).min(pass);
                let at = (panel, c0 - p * PANEL);
                let (bias, c) = (&bias[c0..c0 + cols], &mut c[r0 * ldc + c0..]);
                macro_rules! regs {
                    ($r:literal) => {
                        match cols.div_ceil(S::W) {
                            3 => tile::<S, $r, 3>(s, (a, lda, k), at, bias, (c, ldc)),
                            2 => tile::<S, $r, 2>(s, (a, lda, k), at, bias, (c, ldc)),
                            _ => tile::<S, $r, 1>(s, (a, lda, k), at, bias, (c, ldc)),
                        }
                    };
                }
                match rows {
                    8 => regs!(8),
                    7 => regs!(7),
                    6 => regs!(6),
                    5 => regs!(5),
                    4 => regs!(4),
                    3 => regs!(3),
                    2 => regs!(2),
                    _ => regs!(1),
                }
            }
        }
    }
}

/// One `R x cols` tile in `V` registers per row: `c[r][j] = bias[j] + sum_i
/// a[r][i] * panel[i][off + j]`.
#[inline(always)]
fn tile<S: Simd, const R: usize, const V: usize>(
    s: S,
    (a, lda, k): (&[f32], usize, usize),
    (panel, off): (&[f32], usize),
    bias: &[f32],
    (c, ldc): (&mut [f32], usize),
) {
    let w = S::W;
    let a_rows: [&[f32]; R] = std::array::from_fn(|r| &a[r * lda..][..k]);
    let panel = &panel[..k * PANEL];
    assert!(off + V * w <= PANEL);
    let mut acc = [[s.splat(0.0); V]; R];
    // one step of k: V loads of b, R broadcasts of a, V R multiply-adds
    let step = |acc: &mut [[S::R; V]; R], i: usize| {
        // SAFETY: i < k, every row of `a_rows` holds k values and `panel` k rows
        // of PANEL (sliced above), off + V w <= PANEL (asserted); unchecked, the
        // loop is its FMAs and loads only (with the checks: 61 against 78 GFLOP/s
        // on one core)
        let b_row = unsafe { panel.get_unchecked(i * PANEL + off..i * PANEL + off + V * w) };
        let b: [S::R; V] = std::array::from_fn(|v| s.load(&b_row[v * w..]));
        for (acc_r, a_r) in acc.iter_mut().zip(&a_rows) {
            let x = s.splat(unsafe { *a_r.get_unchecked(i) });
            for (acc_rv, &b_v) in acc_r.iter_mut().zip(&b) {
                *acc_rv = s.mul_add(x, b_v, *acc_rv);
            }
        }
    };
    // two steps per iteration: half the loop overhead
    for i in (0..k - k % 2).step_by(2) {
        step(&mut acc, i);
        step(&mut acc, i + 1);
    }
    if k % 2 == 1 {
        step(&mut acc, k - 1);
    }
    let cols = bias.len();
    if cols == V * w {
        // whole registers: bias added and stored a register at a time
        let bias: [S::R; V] = std::array::from_fn(|v| s.load(&bias[v * w..]));
        for (r, acc_r) in acc.iter().enumerate() {
            let c_row = &mut c[r * ldc..][..cols];
            for (v, (&acc_rv, &b_v)) in acc_r.iter().zip(&bias).enumerate() {
                s.store(s.add(acc_rv, b_v), &mut c_row[v * w..]);
            }
        }
        return;
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let mut out = [0.0f32; PANEL];
        for (v, &acc_rv) in acc_r.iter().enumerate() {
            s.store(acc_rv, &mut out[v * w..]);
        }
        for ((c, o), b) in c[r * ldc..][..cols].iter_mut().zip(out).zip(bias) {
            *c = o + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_product_matches_naive_for_every_edge() {
        // rows not a multiple of the tile, columns not of the panel, k not of 8
        for (m, k, n) in [
            (1, 1, 1),
            (5, 9, 25),
            (7, 16, 48),
            (4, 13, 84),
            (9, 400, 120),
            (3, 0, 5),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25).collect();
            let mut packed = vec![f32::NAN; packed_len(k, n)];
            pack_transposed(&w, n, k, &mut packed);
            let ldc = n + 3;
            let mut c = vec![-7.0; m * ldc];
            gemm_packed(&a, m, k, k, &packed, n, &bias, &mut c, ldc);
            for r in 0..m {
                for j in 0..n {
                    let want: f32 = bias[j] + (0..k).map(|i| a[r * k + i] * w[j * k + i]).sum::<f32>();
                    let got = c[r * ldc + j];
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n} ({r},{j}): {got} vs {want}"
                    );
                }
                // the gap between rows is not written
                assert!(c[r * ldc + n..(r + 1) * ldc].iter().all(|&v| v == -7.0));
            }
        }
    }

    #[test]
    fn matches_naive_product_with_transposes() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect(); // stored [n, k]
        let mut c = vec![1.0; m * n];
        gemm(MatRef::new(&a, m, k), MatRef::new(&b, n, k).t(), 2.0, &mut c, n);
        for r in 0..m {
            for col in 0..n {
                let want: f32 = 2.0 + (0..k).map(|i| a[r * k + i] * b[col * k + i]).sum::<f32>();
                assert!((c[r * n + col] - want).abs() < 1e-4);
            }
        }
    }
}
