//! Matrix products, written for LeNet's small shapes. [`gemm()`]: `C = A B + beta
//! C` on strided `f32` matrices, unpacked register tiles (rows times columns, or
//! dot products, by the operands' layout). [`gemm_packed`]: `C = A W^T + bias`
//! with `W` packed once per call by [`pack_transposed`], a register-tile
//! micro-kernel for many rows (C5 forward at batch 256). Measurements in
//! docs/benchmarks.md.
//!
//! **Same bits on every CPU with FMA.** Every kernel here fixes the order of each
//! sum in its source: one chain of multiply-adds in order of `k`, or 16
//! interleaved partial sums added in order. The register width only decides how
//! many sums run side by side, so AVX2 and AVX-512 give the same bits. (A GEMM
//! library that picks its kernels and its blocking of `k` from the CPU, as the
//! `gemm` crate does, sums in another order on another machine.)

use crate::simd::{with_isa, Simd};

/// A strided view of a matrix in a slice: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements, read through the strides.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance in `data` between rows.
    pub rs: usize,
    /// Distance in `data` between columns.
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

/// `c[m x n] = a[m x k] * b[k x n] + beta * c`, with `c` row-major with row stride
/// `ldc` (with `beta == 0`, `c` is not read: it may hold anything).
///
/// Two kernels, chosen by the operands' layout (never by the CPU):
/// - `b` with contiguous rows (`b.cs == 1`): **rows times columns**. Each value of
///   `c` is one chain of multiply-adds in order of `k`, vectorised across the
///   columns of `b` (a tile of rows of `a` broadcast against registers of `b`).
/// - `a` with contiguous rows and `b` with contiguous columns (`a.cs == 1`,
///   `b.rs == 1`, the product `A B^T` of two row-major matrices): **dot
///   products**. Each value of `c` sums `k` products in 16 interleaved partial
///   sums (lane `i % 16`), the lanes added in a fixed tree (`Simd::reduce16`),
///   then the last `k % 16` terms in order.
///
/// Any other layout runs a plain loop in the first form's order. Either way the
/// result is the same on every instruction set with FMA (the 16 lanes are two
/// AVX2 registers or one AVX-512 register), and `beta * c` is added last.
///
/// ```
/// use tensor_ops::gemm::{gemm, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1,2],[3,4]]
/// let mut c = [0.0; 4];
/// gemm(MatRef::new(&a, 2, 2), MatRef::new(&a, 2, 2).t(), 0.0, &mut c, 2);
/// assert_eq!(c, [5.0, 11.0, 11.0, 25.0]); // A A^T
/// ```
pub fn gemm(a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm: C too small");
    if k > 0 {
        assert!(last_index(m, k, a.rs, a.cs) < a.data.len(), "gemm: A too small");
        assert!(last_index(k, n, b.rs, b.cs) < b.data.len(), "gemm: B too small");
    }
    let c = Out { c, ldc, beta };
    if b.cs == 1 || k == 0 {
        with_isa!(s => rows_times_columns(s, a, b, c))
    } else if a.cs == 1 && b.rs == 1 {
        with_isa!(s => dot_products(s, a, b, c))
    } else {
        with_isa!(s => {
            for r in 0..m {
                for j in 0..n {
                    let mut acc = 0.0;
                    for i in 0..k {
                        acc = s.mul_add1(a.data[r * a.rs + i * a.cs], b.data[i * b.rs + j * b.cs], acc);
                    }
                    c.c[r * ldc + j] = c.finish(c.c[r * ldc + j], acc);
                }
            }
        })
    }
}

/// `dst [cols x rows] = src [rows x cols]` transposed, 8 x 8 blocks at a time
/// through registers.
#[inline(always)]
pub(crate) fn transpose<S: Simd>(s: S, src: &[f32], (rows, cols): (usize, usize), dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    let (r8, c8) = (rows - rows % 8, cols - cols % 8);
    for r0 in (0..r8).step_by(8) {
        for c0 in (0..c8).step_by(8) {
            s.transpose8((&src[r0 * cols + c0..], cols), (&mut dst[c0 * rows + r0..], rows));
        }
    }
    // the last rows and columns, value by value
    for r in 0..rows {
        let from = if r < r8 { c8 } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// Where a product goes: `c` row-major with row stride `ldc`, combined as
/// `beta * c + sum` (or `sum` alone when `beta == 0`).
struct Out<'a> {
    c: &'a mut [f32],
    ldc: usize,
    beta: f32,
}

impl Out<'_> {
    #[inline(always)]
    fn finish(&self, old: f32, sum: f32) -> f32 {
        if self.beta == 0.0 {
            sum
        } else {
            self.beta * old + sum
        }
    }
}

/// Rows of `a` per tile of [`rows_times_columns`] and registers of `b` per tile,
/// for registers of `w` lanes: AVX-512 4 x 4 (16 accumulators of its 32
/// registers), AVX2 6 x 2 (12 of 16: with 4 x 3, the 12 sums, 3 registers of `b`
/// and the broadcast took all 16, and the compiler kept a sum on the stack; C5's
/// backward pass at batch 256 under `LENET_SIMD=avx2` 550 -> 258 us).
const fn nn_tile_shape(w: usize) -> (usize, usize) {
    if w >= 16 {
        (4, 4)
    } else {
        (6, 2)
    }
}

/// The most rows of a tile of [`rows_times_columns`].
const NN_ROWS: usize = 6;

/// [`gemm`]'s first kernel: `b` has contiguous rows.
#[inline(always)]
fn rows_times_columns<S: Simd>(s: S, a: MatRef, b: MatRef, mut c: Out) {
    let (m, n) = (a.rows, b.cols);
    let w = S::W;
    let whole = n - n % w;
    let k = a.cols;
    let (tile_rows, block) = nn_tile_shape(w);
    let tiles = m.div_ceil(tile_rows);
    let tile_len = k * tile_rows;
    let mut scratch = crate::ThreadScratch::take();
    // `a` packed tile by tile, `[k, tile_rows]` each (read with one pointer in the
    // inner loop, and from L1), then the last columns of `b`, zero-padded to a
    // register
    let (a_pack, tail) = scratch
        .get(tiles * tile_len + k * w)
        .split_at_mut(tiles * tile_len);
    for (t, tile) in a_pack.chunks_exact_mut(tile_len).enumerate() {
        let (r0, rows) = (t * tile_rows, (m - t * tile_rows).min(tile_rows));
        for (i, packed) in tile.chunks_exact_mut(tile_rows).enumerate() {
            for (r, p) in packed.iter_mut().enumerate() {
                *p = if r < rows {
                    a.data[(r0 + r) * a.rs + i * a.cs]
                } else {
                    0.0
                };
            }
        }
    }
    let a_pack = &*a_pack;
    let b_tail = (whole < n).then(|| {
        for (i, t) in tail.chunks_exact_mut(w).enumerate() {
            let from = &b.data[i * b.rs + whole..i * b.rs + n];
            t[..from.len()].copy_from_slice(from);
            t[from.len()..].fill(0.0);
        }
        MatRef {
            data: &*tail,
            rows: k,
            cols: w,
            rs: w,
            cs: 1,
        }
    });
    // column blocks outside, row tiles inside: a block of `b` (k rows of up to 4
    // registers) stays in L1 while every row tile passes over it (rows outside
    // streamed C3's whole patch matrix from L2 once per tile: 89 GFLOP/s, not 120)
    let mut j0 = 0;
    while j0 < whole {
        let regs = ((whole - j0) / w).min(block);
        for (t, a_tile) in a_pack.chunks_exact(tile_len).enumerate() {
            let (r0, rows) = (t * tile_rows, (m - t * tile_rows).min(tile_rows));
            macro_rules! regs {
                ($r:literal) => {
                    match regs {
                        4 => nn_tile::<S, $r, 4>(s, a_tile, b, &mut c, (r0, j0)),
                        3 => nn_tile::<S, $r, 3>(s, a_tile, b, &mut c, (r0, j0)),
                        2 => nn_tile::<S, $r, 2>(s, a_tile, b, &mut c, (r0, j0)),
                        _ => nn_tile::<S, $r, 1>(s, a_tile, b, &mut c, (r0, j0)),
                    }
                };
            }
            match rows {
                6 => regs!(6),
                5 => regs!(5),
                4 => regs!(4),
                3 => regs!(3),
                2 => regs!(2),
                _ => regs!(1),
            }
        }
        j0 += regs * w;
    }
    // the last columns (fewer than a register) through one register over the
    // zero-padded copy: the same chains of multiply-adds
    let Some(b_tail) = b_tail else { return };
    for (t, a_tile) in a_pack.chunks_exact(tile_len).enumerate() {
        let (r0, rows) = (t * tile_rows, (m - t * tile_rows).min(tile_rows));
        let mut acc = [[s.splat(0.0); 1]; NN_ROWS];
        match rows {
            6 => nn_sums::<S, 6, 1>(s, a_tile, b_tail, 0, &mut acc),
            5 => nn_sums::<S, 5, 1>(s, a_tile, b_tail, 0, first_rows(&mut acc)),
            4 => nn_sums::<S, 4, 1>(s, a_tile, b_tail, 0, first_rows(&mut acc)),
            3 => nn_sums::<S, 3, 1>(s, a_tile, b_tail, 0, first_rows(&mut acc)),
            2 => nn_sums::<S, 2, 1>(s, a_tile, b_tail, 0, first_rows(&mut acc)),
            _ => nn_sums::<S, 1, 1>(s, a_tile, b_tail, 0, first_rows(&mut acc)),
        }
        for (r, acc_r) in acc[..rows].iter().enumerate() {
            let mut sums = [0.0f32; 16];
            s.store(acc_r[0], &mut sums);
            for (j, &sum) in (whole..n).zip(&sums) {
                let at = (r0 + r) * c.ldc + j;
                c.c[at] = c.finish(c.c[at], sum);
            }
        }
    }
}

/// The first `N` rows of a tile's accumulators.
#[inline(always)]
fn first_rows<T, const N: usize>(acc: &mut [T; NN_ROWS]) -> &mut [T; N] {
    let first: &mut [T] = &mut acc[..N];
    first.try_into().unwrap_or_else(|_| unreachable!("N <= NN_ROWS"))
}

/// One `R x V` registers tile of [`rows_times_columns`] at row `r0`, column `j0`;
/// `a_tile` holds rows `r0..` of `a`, packed.
#[inline(always)]
fn nn_tile<S: Simd, const R: usize, const V: usize>(
    s: S,
    a_tile: &[f32],
    b: MatRef,
    c: &mut Out,
    (r0, j0): (usize, usize),
) {
    let w = S::W;
    let mut acc = [[s.splat(0.0); V]; R];
    nn_sums(s, a_tile, b, j0, &mut acc);
    // c = sum, or beta * c + sum (a multiply, then an add)
    let beta = s.splat(c.beta);
    for (r, acc_r) in acc.iter().enumerate() {
        let c_row = &mut c.c[(r0 + r) * c.ldc + j0..][..V * w];
        for (v, &sum) in acc_r.iter().enumerate() {
            let out = &mut c_row[v * w..];
            let value = if c.beta == 0.0 {
                sum
            } else {
                s.add(s.mul(beta, s.load(out)), sum)
            };
            s.store(value, out);
        }
    }
}

/// The sums of an `R x V` registers tile: `acc[r][v] = sum_i a_tile[i][r] *
/// b[i][j0 + v W ..]`, one chain of multiply-adds per value, in order of `i`;
/// `a_tile` is `[k, tile_rows]` ([`nn_tile_shape`]).
#[inline(always)]
fn nn_sums<S: Simd, const R: usize, const V: usize>(
    s: S,
    a_tile: &[f32],
    b: MatRef,
    j0: usize,
    acc: &mut [[S::R; V]; R],
) {
    let (k, w, tile_rows) = (b.rows, S::W, nn_tile_shape(S::W).0);
    // every index below is checked here, once
    assert!(R <= tile_rows && a_tile.len() >= k * tile_rows);
    assert!(k == 0 || (k - 1) * b.rs + j0 + V * w <= b.data.len());
    for i in 0..k {
        // SAFETY: in bounds by the asserts above
        let b_row = unsafe { b.data.get_unchecked(i * b.rs + j0..i * b.rs + j0 + V * w) };
        let a_i = unsafe { a_tile.get_unchecked(i * tile_rows..i * tile_rows + R) };
        let mut bv = [s.splat(0.0); V];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = s.load(&b_row[v * w..]);
        }
        for (acc_r, &a_ir) in acc.iter_mut().zip(a_i) {
            let x = s.splat(a_ir);
            for (acc_rv, &b_v) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = s.mul_add(x, b_v, *acc_rv);
            }
        }
    }
}

/// Partial sums per dot product in [`dot_products`], whatever the register width.
const DOT_LANES: usize = 16;

/// [`gemm`]'s second kernel: `c[r][j] = sum_i a[r][i] * bt[j][i]`, both operands
/// with contiguous rows (`bt` is `b` transposed), in [`DOT_LANES`] partial sums.
#[inline(always)]
fn dot_products<S: Simd>(s: S, a: MatRef, b: MatRef, mut c: Out) {
    let (m, n) = (a.rows, b.cols);
    // tiles of up to 5 rows of a x 3 rows of bt with AVX-512 (15 sums in 15
    // registers, 8 loads per 15 multiply-adds), 3 x 2 with AVX2 (each sum in two
    // registers: 12 of its 16), as even as the shape allows: C1's weight gradient
    // at one image (5 x 6 sums of 784 terms per product) takes two tiles of 5 x 3,
    // or six of at most 3 x 2 (AVX2 with 2 x 2 tiles: 4.6 us, with these 3.9)
    let (most_rows, most_cols) = if S::W == 16 { (5, 3) } else { (3, 2) };
    let (tile_rows, tile_cols) = (even_tile(m, most_rows), even_tile(n, most_cols));
    for r0 in (0..m).step_by(tile_rows) {
        let rows = (m - r0).min(tile_rows);
        for j0 in (0..n).step_by(tile_cols) {
            macro_rules! cols {
                ($r:literal) => {
                    match (n - j0).min(tile_cols) {
                        3 => dot_tile::<S, $r, 3>(s, a, b, &mut c, (r0, j0)),
                        2 => dot_tile::<S, $r, 2>(s, a, b, &mut c, (r0, j0)),
                        _ => dot_tile::<S, $r, 1>(s, a, b, &mut c, (r0, j0)),
                    }
                };
            }
            match rows {
                5 => cols!(5),
                4 => cols!(4),
                3 => cols!(3),
                2 => cols!(2),
                _ => cols!(1),
            }
        }
    }
}

/// The size of each of the fewest tiles of at most `most` that cover `len`, as
/// even as they can be (at least 1).
fn even_tile(len: usize, most: usize) -> usize {
    len.div_ceil(len.div_ceil(most).max(1)).max(1)
}

/// `R x C` dot products of [`dot_products`] at row `r0` of `a`, row `j0` of `bt`.
#[inline(always)]
fn dot_tile<S: Simd, const R: usize, const C: usize>(
    s: S,
    a: MatRef,
    b: MatRef,
    c: &mut Out,
    (r0, j0): (usize, usize),
) {
    let (k, w) = (a.cols, S::W);
    let whole = k - k % DOT_LANES;
    // acc[r][j][h]: lanes h * W .. (h + 1) * W of the sum (r, j); 16 / W halves
    let mut acc = [[[s.splat(0.0); 2]; C]; R];
    let halves = DOT_LANES / w;
    let a_row = |r: usize| &a.data[(r0 + r) * a.rs..][..k];
    let b_row = |j: usize| &b.data[(j0 + j) * b.cs..][..k];
    for i0 in (0..whole).step_by(DOT_LANES) {
        for h in 0..halves {
            let at = i0 + h * w;
            let mut bv = [s.splat(0.0); C];
            for (j, bv) in bv.iter_mut().enumerate() {
                *bv = s.load(&b_row(j)[at..]);
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = s.load(&a_row(r)[at..]);
                for (acc_rj, &bv) in acc_r.iter_mut().zip(&bv) {
                    acc_rj[h] = s.mul_add(av, bv, acc_rj[h]);
                }
            }
        }
    }
    // each sum's 16 lanes added in a fixed tree, then its last k % 16 products in
    // order of i: the tile's sums side by side, so that their chains of dependent
    // multiply-adds overlap (one sum after the other, F6's tails of 8 products
    // made its forward pass at batch 16 take 15 us; same bits either way)
    let mut sums = [[0.0f32; C]; R];
    for (sums_r, acc_r) in sums.iter_mut().zip(&acc) {
        for (sum, acc_rj) in sums_r.iter_mut().zip(acc_r) {
            let mut lanes = [0.0f32; DOT_LANES];
            for h in 0..halves {
                s.store(acc_rj[h], &mut lanes[h * w..]);
            }
            *sum = s.reduce16(&lanes);
        }
    }
    for i in whole..k {
        for (r, sums_r) in sums.iter_mut().enumerate() {
            let a_ri = a_row(r)[i];
            for (j, sum) in sums_r.iter_mut().enumerate() {
                *sum = s.mul_add1(a_ri, b_row(j)[i], *sum);
            }
        }
    }
    for (r, sums_r) in sums.iter().enumerate() {
        for (j, &sum) in sums_r.iter().enumerate() {
            let at = (r0 + r) * c.ldc + j0 + j;
            c.c[at] = c.finish(c.c[at], sum);
        }
    }
}

/// Columns per panel of a [packed](pack_transposed) right-hand operand: three
/// AVX-512 registers, or three passes of two AVX2 registers.
pub const PANEL: usize = 48;

/// Rows of the left operand per micro-tile, and registers of columns per pass
/// over a panel, for registers of `w` lanes: AVX-512's 32 registers hold 8 rows x
/// 3 registers (24 accumulators); AVX2's 16 hold 6 rows x 2 registers (12
/// accumulators, 2 loads and 6 broadcasts per 12 FMAs). With AVX2's 4 rows x 3
/// registers, the 12 sums, 3 registers of `b` and the broadcast took all 16 and
/// the compiler kept a sum on the stack: C5's forward pass at batch 256 under
/// `LENET_SIMD=avx2` took 179 us against 140 with 6 x 2 (kernel bench, 2
/// threads, AMD EPYC).
const fn tile_shape(w: usize) -> (usize, usize) {
    if w >= 16 {
        (8, 3)
    } else {
        (6, 2)
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
        // columns of b (rows of w) in this panel, and its whole groups of 8
        let live = (n - j0).min(PANEL);
        let groups = live / L;
        for g in 0..groups {
            // 8 rows of w, 8 inputs at a time: an 8 x 8 register transpose into 8
            // rows of the panel (C5's 120 x 400 weights on one core of an AMD
            // EPYC with AVX-512: 15.5 us with 8-value copies through an array,
            // 30 us when the block was gathered value by value)
            let rows = &w[(j0 + g * L) * k..][..L * k];
            for i0 in (0..whole).step_by(L) {
                s.transpose8((&rows[i0..], k), (&mut panel[i0 * PANEL + g * L..], PANEL));
            }
        }
        // the rest value by value: the last inputs of the whole groups, the
        // columns past them, then zeros
        for i in 0..k {
            let from = if i < whole { groups * L } else { 0 };
            for j in from..PANEL {
                panel[i * PANEL + j] = if j < live { w[(j0 + j) * k + i] } else { 0.0 };
            }
        }
    }
}

/// `c[m x n] = a[m x k] * b + bias` (`c` overwritten), with `a` row-major (row
/// stride `lda`), `b` [packed](pack_transposed) from `n` columns, `bias` of `n`
/// values added to every row, `c` row-major with row stride `ldc`.
///
/// The micro-kernel keeps a tile of `c` in registers (AVX2: 6 rows x 16 columns in
/// 12 registers; AVX-512: 8 x 48 in 24) while `k` steps stream past (a broadcast
/// value of `a` per row, 2 or 3 loads of `b`, 2 or 3 FMAs per row); each value
/// of `c` is one chain of multiply-adds in order of `k`, then the bias.
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
    let (tile_rows, regs) = tile_shape(S::W);
    // columns per pass over a panel
    let pass = regs * S::W;
    // the passes over each panel: (panel, first column), in order
    let passes = (0..n.div_ceil(PANEL)).flat_map(|p| {
        (p * PANEL..n.min((p + 1) * PANEL))
            .step_by(pass)
            .map(move |c0| (p, c0))
    });
    if pass < PANEL {
        // passes outside: a pass's columns of `b` (k x 16 values with AVX2, 25 KB
        // at C5) stay in L1 while the row tiles stream past. (Rows outside read
        // the whole of `b` from L2 once per tile of 6 rows: `layer_times -- 1 256
        // classic c5` under AVX2 on a Zen 3, alternating, C5's forward pass 301
        // -> 274-287 us, F6's 72 -> 61.)
        for (p, c0) in passes {
            for r0 in (0..m).step_by(tile_rows) {
                packed_tile(s, (a, m, k, lda), packed, bias, (c, ldc), (r0, p, c0));
            }
        }
    } else {
        // rows outside: a tile's rows of `a` (k values each) stay in L1 while
        // the panels stream from L2
        for r0 in (0..m).step_by(tile_rows) {
            for (p, c0) in passes.clone() {
                packed_tile(s, (a, m, k, lda), packed, bias, (c, ldc), (r0, p, c0));
            }
        }
    }
}

/// The tile of [`gemm_packed_on`] at rows `r0..` of `a` and columns `c0..` (in
/// panel `p`): as many rows and registers of columns as are left, at most
/// [`tile_shape`]'s.
#[inline(always)]
fn packed_tile<S: Simd>(
    s: S,
    (a, m, k, lda): (&[f32], usize, usize, usize),
    packed: &[f32],
    bias: &[f32],
    (c, ldc): (&mut [f32], usize),
    (r0, p, c0): (usize, usize, usize),
) {
    let n = bias.len();
    let (tile_rows, regs) = tile_shape(S::W);
    let rows = (m - r0).min(tile_rows);
    let a = &a[r0 * lda..];
    let at = (&packed[p * PANEL * k..][..PANEL * k], c0 - p * PANEL);
    let cols = (n - c0).min(regs * S::W);
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
    // one step of k: V loads of b, R broadcasts of a, V R multiply-adds. (A
    // closure or `from_fn` here would be compiled apart from the kernel, without
    // its instruction set, whenever the compiler chose not to inline it: plain
    // loops and `#[inline(always)]` functions keep every intrinsic inside.)
    #[inline(always)]
    fn step<S: Simd, const R: usize, const V: usize>(
        s: S,
        acc: &mut [[S::R; V]; R],
        (a_rows, b_row): (&[&[f32]; R], &[f32]),
        i: usize,
    ) {
        let mut b = [s.splat(0.0); V];
        for (v, b) in b.iter_mut().enumerate() {
            *b = s.load(&b_row[v * S::W..]);
        }
        for (acc_r, a_r) in acc.iter_mut().zip(a_rows) {
            // SAFETY: i < k, and every row of `a_rows` holds k values (sliced
            // above); unchecked, the loop is its FMAs and loads only (with the
            // checks: 61 against 78 GFLOP/s on one core)
            let x = s.splat(unsafe { *a_r.get_unchecked(i) });
            for (acc_rv, &b_v) in acc_r.iter_mut().zip(&b) {
                *acc_rv = s.mul_add(x, b_v, *acc_rv);
            }
        }
    }
    // SAFETY: i < k, `panel` holds k rows of PANEL (sliced above), and
    // off + V w <= PANEL (asserted)
    let b_row = |i: usize| unsafe { panel.get_unchecked(i * PANEL + off..i * PANEL + off + V * w) };
    // two steps per iteration: half the loop overhead
    for i in (0..k - k % 2).step_by(2) {
        step(s, &mut acc, (&a_rows, b_row(i)), i);
        step(s, &mut acc, (&a_rows, b_row(i + 1)), i + 1);
    }
    if k % 2 == 1 {
        step(s, &mut acc, (&a_rows, b_row(k - 1)), k - 1);
    }
    let cols = bias.len();
    if cols == V * w {
        // whole registers: bias added and stored a register at a time
        let mut bias_r = [s.splat(0.0); V];
        for (v, b) in bias_r.iter_mut().enumerate() {
            *b = s.load(&bias[v * w..]);
        }
        let bias = bias_r;
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
