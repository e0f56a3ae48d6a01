//! The one matrix-multiply entry point: `C = A B + beta C` on strided `f32`
//! matrices, checked against the slices and handed to the `gemm` crate (which
//! picks its AVX-512 / AVX2+FMA kernel at run time, and skips packing for the
//! small matrices LeNet's layers make). `gemm` measured faster than
//! `matrixmultiply` on LeNet's shapes, up to 8x at batch 1: see docs/benchmarks.md.

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
    gemm_strided(a, b, beta, c, (ldc, 1));
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
