//! One 8-lane `f32` register: AVX + FMA intrinsics when the build targets them
//! (`.cargo/config.toml` builds for the native CPU), a plain array otherwise. Both
//! compute the same fused multiply-adds, so results do not depend on which is used.
//! Used by the kernels that are written register by register: the lanes
//! convolution (`conv/lanes.rs`) and the packed GEMM micro-kernel (`gemm.rs`).
//! (Written with plain arrays only, the compiler keeps wide strips of accumulators
//! in memory: C3 at batch 32 ran at 6.6 GFLOP/s forward instead of 49.8.)

/// Lanes per register.
pub const L: usize = 8;

#[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
pub mod avx {
    use std::arch::x86_64::*;
    pub type R = __m256;
    // SAFETY (every function): the build enables AVX and FMA (the cfg above), and
    // each pointer is that of a slice of 8 values.
    #[inline(always)]
    pub fn splat(v: f32) -> R {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    pub fn load(v: &[f32]) -> R {
        let v = &v[..8];
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    }
    #[inline(always)]
    pub fn store(r: R, v: &mut [f32]) {
        let v = &mut v[..8];
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), r) }
    }
    /// `a * b + c`, rounded once.
    #[inline(always)]
    pub fn mul_add(a: R, b: R, c: R) -> R {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    /// `a + b`.
    #[inline(always)]
    pub fn add(a: R, b: R) -> R {
        unsafe { _mm256_add_ps(a, b) }
    }
    /// The 8x8 transpose: lane `j` of result `i` is lane `i` of `r[j]`.
    #[inline(always)]
    pub fn transpose(r: [R; 8]) -> [R; 8] {
        unsafe {
            // pairs of rows interleaved, then pairs of pairs, then the halves
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
        }
    }
}

/// The same on plain arrays (used where AVX is not available; tested against the
/// AVX version where it is).
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"),
    allow(dead_code)
)]
pub mod portable {
    use super::L;
    pub type R = [f32; L];
    #[inline(always)]
    pub fn splat(v: f32) -> R {
        [v; L]
    }
    #[inline(always)]
    pub fn load(v: &[f32]) -> R {
        std::array::from_fn(|l| v[l])
    }
    #[inline(always)]
    pub fn store(r: R, v: &mut [f32]) {
        v[..L].copy_from_slice(&r)
    }
    #[inline(always)]
    pub fn mul_add(a: R, b: R, c: R) -> R {
        std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
    }
    #[inline(always)]
    pub fn add(a: R, b: R) -> R {
        std::array::from_fn(|l| a[l] + b[l])
    }
    #[inline(always)]
    pub fn transpose(r: [R; 8]) -> [R; 8] {
        std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]))
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
pub use avx::*;
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma")))]
pub use portable::*;
const _: () = assert!(L == 8, "the AVX register holds 8 lanes");

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels' arithmetic is the functions of this module: where the AVX ones
    /// are compiled, the portable ones must give the same bits.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
    fn portable_registers_match_avx() {
        let rows: [[f32; L]; L] =
            std::array::from_fn(|i| std::array::from_fn(|j| ((i * 8 + j) as f32).sin()));
        let (mut a, mut p) = ([0.0f32; L], [0.0f32; L]);
        for i in 0..L {
            let (x, y, z) = (rows[i], rows[(i + 1) % L], rows[(i + 2) % L]);
            let fma = avx::mul_add(avx::load(&x), avx::load(&y), avx::load(&z));
            avx::store(fma, &mut a);
            portable::store(
                portable::mul_add(portable::load(&x), portable::load(&y), portable::load(&z)),
                &mut p,
            );
            assert_eq!(a, p);
            avx::store(avx::add(avx::load(&x), avx::load(&y)), &mut a);
            portable::store(portable::add(portable::load(&x), portable::load(&y)), &mut p);
            assert_eq!(a, p);
            avx::store(avx::splat(x[0]), &mut a);
            assert_eq!(a, portable::splat(x[0]));
        }
        let t_avx = avx::transpose(std::array::from_fn(|i| avx::load(&rows[i])));
        let t_portable = portable::transpose(rows);
        for (ta, tp) in t_avx.into_iter().zip(t_portable) {
            avx::store(ta, &mut a);
            assert_eq!(a, tp);
        }
    }
}
