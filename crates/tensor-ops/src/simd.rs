//! The instruction set, chosen at run time: the one place that knows which vector
//! registers the CPU has.
//!
//! The kernels that are written register by register (the lanes convolution,
//! `conv/lanes.rs`, and the packed GEMM micro-kernel, `gemm.rs`) are generic over a
//! [`Simd`] token; the element-wise kernels are plain loops that the compiler
//! vectorises. [`with_isa!`] runs a kernel body under the [`Isa`] in use: for
//! AVX-512 and AVX2 it compiles the body inside a `#[target_feature]` function, so
//! that the body (inlined into it) is compiled for that instruction set, whatever
//! the build's `target-cpu`; the portable body is the build's own code.
//!
//! **Same results on every instruction set.** Every kernel adds in an order set by
//! its source, never by the register width (a wider register holds more images or
//! more output columns, never more terms of one sum), and rounds each
//! multiply-add once (FMA) on both AVX2 and AVX-512, so those two give the same
//! bits. The portable path has no FMA to count on (a software `fmaf` per lane would
//! cost ~20x), so it multiplies and adds in two roundings: the same sums in the
//! same order, but not the same low bits.
//!
//! The choice is made once (the best the CPU has), can be forced with the
//! environment variable `LENET_SIMD` (`portable`, `avx2`, `avx512`) or
//! [`set_isa`], and is read by every kernel call.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the kernels can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the build's target (SSE2 on a
    /// default x86-64 build); separate multiplies and adds.
    Portable,
    /// x86-64 AVX2 with FMA: 8 `f32` lanes.
    Avx2,
    /// x86-64 AVX-512F (with AVX2 and FMA): 16 `f32` lanes.
    Avx512,
}

/// Why an instruction set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    /// The name is not one of `portable`, `avx2`, `avx512`.
    #[error("unknown instruction set {0:?} (portable, avx2, avx512)")]
    Unknown(String),
    /// This CPU (or architecture) lacks the instructions.
    #[error("this CPU does not support {0} (it supports: {1})")]
    Unsupported(&'static str, String),
}

impl Isa {
    /// Every instruction set, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name used by `LENET_SIMD` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// `f32` values per vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Portable | Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    /// Does this CPU have the instructions?
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.is_supported() && is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The instruction sets this CPU supports, slowest first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest instruction set this CPU supports.
    pub fn best() -> Isa {
        Isa::supported().pop().unwrap_or(Isa::Portable)
    }

    /// The instruction set `LENET_SIMD` asks for, if set (an error if it names
    /// an unknown or unsupported one), else [`Isa::best`].
    ///
    /// ```
    /// // with LENET_SIMD unset or valid, this is what the kernels use
    /// let isa = tensor_ops::Isa::from_env().unwrap_or(tensor_ops::Isa::best());
    /// assert!(isa.is_supported());
    /// ```
    pub fn from_env() -> Result<Isa, IsaError> {
        match std::env::var("LENET_SIMD") {
            Ok(name) if !name.is_empty() => name.parse::<Isa>()?.check(),
            _ => Ok(Isa::best()),
        }
    }

    fn check(self) -> Result<Isa, IsaError> {
        if self.is_supported() {
            return Ok(self);
        }
        let names: Vec<&str> = Isa::supported().iter().map(|i| i.name()).collect();
        Err(IsaError::Unsupported(self.name(), names.join(", ")))
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = IsaError;
    fn from_str(s: &str) -> Result<Isa, IsaError> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| IsaError::Unknown(s.to_string()))
    }
}

/// 0: not chosen yet; else 1 + the index in `Isa::ALL`.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The instruction set the kernels use: chosen on first use from `LENET_SIMD`
/// ([`Isa::from_env`]; an unusable value falls back to [`Isa::best`], so a
/// program that wants to refuse it calls `from_env` itself), or set by [`set_isa`].
pub fn isa() -> Isa {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => {
            let isa = Isa::from_env().unwrap_or_else(|_| Isa::best());
            ACTIVE.store(isa as u8 + 1, Ordering::Relaxed);
            isa
        }
        n => Isa::ALL[usize::from(n - 1)],
    }
}

/// Makes every later kernel call use `isa`, if the CPU supports it. (For tests
/// and benchmarks that compare instruction sets in one process; results change
/// with it only in the portable path's low bits.) A kernel call that is running
/// finishes on the set it started with.
///
/// ```
/// use tensor_ops::{isa, set_isa, Isa};
/// let before = isa();
/// set_isa(Isa::Portable).unwrap();
/// assert_eq!(isa(), Isa::Portable);
/// set_isa(before).unwrap();
/// ```
pub fn set_isa(isa: Isa) -> Result<(), IsaError> {
    let isa = isa.check()?;
    ACTIVE.store(isa as u8 + 1, Ordering::Relaxed);
    Ok(())
}

/// Runs `$body` with `$s` bound to the [`Simd`] token of the instruction set in
/// use ([`isa`]), compiled for that instruction set. Everything the body calls
/// that should be compiled for it must be `#[inline(always)]`.
///
/// `with_isa!(isa; s, |width| keep => body)` runs the body under the
/// instruction set `isa` (an [`Isa`] the caller read from [`isa`] before:
/// a kernel that chose its layout by the register width reads the set once, so
/// that [`set_isa`] on another thread cannot change it halfway), and compiles it
/// only for the sets whose register width ([`Simd::W`]) makes `keep` (a
/// constant expression) true: for a body that its caller runs only on some
/// widths (the training planes of `W` images), whose other instantiations would
/// be compiled for nothing. Another set panics (unreachable, for a caller that
/// chose the width from the same `isa`).
macro_rules! with_isa {
    ($s:ident => $body:expr) => {
        $crate::simd::with_isa!($crate::simd::isa(); $s, |_width| true => $body)
    };
    ($isa:expr; $s:ident, |$w:pat_param| $keep:expr => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::simd::Simd as _;
        match $isa {
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Isa::Avx512 => $crate::simd::with_isa!(@x86 Avx512, $s, |$w| $keep => $body),
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Isa::Avx2 => $crate::simd::with_isa!(@x86 Avx2, $s, |$w| $keep => $body),
            _ => {
                if const {
                    let $w = <$crate::simd::Portable as $crate::simd::Simd>::W;
                    $keep
                } {
                    let $s = $crate::simd::Portable;
                    $body
                } else {
                    unreachable!("a kernel for another register width than the portable path's")
                }
            }
        }
    }};
    // the arm of x86 token `$tok`
    (@x86 $tok:ident, $s:ident, |$w:pat_param| $keep:expr => $body:expr) => {
        // (`const`: a dropped set's arm is not even generated)
        if const {
            let $w = <$crate::simd::x86::$tok as $crate::simd::Simd>::W;
            $keep
        } {
            let $s = $crate::simd::x86::$tok::assume();
            // SAFETY: `isa()` returns only instruction sets the CPU supports
            unsafe {
                $crate::simd::x86::$tok::vectorize(
                    #[inline(always)]
                    || $body,
                )
            }
        } else {
            unreachable!(concat!("a kernel for another register width than ", stringify!($tok), "'s"))
        }
    };
}
pub(crate) use with_isa;

/// The vector operations the register-level kernels are written in. `W` lanes
/// per register; every operation acts lane by lane, so a kernel's result for one
/// lane never depends on `W`.
pub(crate) trait Simd: Copy + Send + Sync {
    /// Lanes per register: 8 or 16.
    const W: usize;
    /// Vector registers (the kernels size their register tiles by it).
    const REGISTERS: usize;
    /// [`Self::W`], from a token (inside [`with_isa!`], whose body cannot name
    /// the token's type).
    #[inline(always)]
    fn width(self) -> usize {
        Self::W
    }
    /// [`Self::REGISTERS`], from a token.
    #[inline(always)]
    fn registers(self) -> usize {
        Self::REGISTERS
    }
    /// One register of `W` values.
    type R: Copy;
    fn splat(self, v: f32) -> Self::R;
    /// The first `W` values of `v`.
    fn load(self, v: &[f32]) -> Self::R;
    /// Into the first `W` values of `v`.
    fn store(self, r: Self::R, v: &mut [f32]);
    /// Lanes `lo..hi` into `v[lo..hi]`, the rest of `v` left as it is (`v` holds
    /// at least `W` values; `lo <= hi <= W`).
    fn store_window(self, r: Self::R, v: &mut [f32], lo: usize, hi: usize);
    /// `a * b + c`: rounded once on AVX2 and AVX-512, twice on the portable path.
    fn mul_add(self, a: Self::R, b: Self::R, c: Self::R) -> Self::R;
    fn add(self, a: Self::R, b: Self::R) -> Self::R;
    fn sub(self, a: Self::R, b: Self::R) -> Self::R;
    fn mul(self, a: Self::R, b: Self::R) -> Self::R;
    /// Scalar `a * b + c`, rounded as [`Simd::mul_add`] rounds it.
    fn mul_add1(self, a: f32, b: f32, c: f32) -> f32;
    /// An 8 x 8 block transposed from one strided buffer into another, through
    /// registers: `dst[i * dst_stride + j] = src[j * src_stride + i]` for
    /// `i, j < 8`. Panics if either block reaches past its slice.
    fn transpose8(self, src: (&[f32], usize), dst: (&mut [f32], usize));
    /// The sum of 16 values in a fixed tree: `v[i] + v[i + 8]`, then `+ [i + 4]`,
    /// `+ [i + 2]`, `+ [i + 1]` (four vector adds on x86).
    fn reduce16(self, v: &[f32; 16]) -> f32;
    /// `v[2 l] + v[2 l + 1]` in lane `l`: the sums of neighbouring pairs of the
    /// first `2 W` values (one add each, as the scalar `v[2 l] + v[2 l + 1]`;
    /// a loop of such sums is not vectorised by the compiler).
    fn add_pairs(self, v: &[f32]) -> Self::R;
    /// `v[l / 2]` in lane `l`: each of the first `W / 2` values twice (the
    /// inverse of [`Simd::add_pairs`]'s layout: what a 2x2 window's gradient
    /// spreads over a row of its inputs).
    fn pairs_of(self, v: &[f32]) -> Self::R;
    /// `(v[2 l], v[2 l + 1])` in lane `l`: the even and the odd values of the
    /// first `2 W` (a row's 2x2 windows, left column and right column).
    fn evens_odds(self, v: &[f32]) -> (Self::R, Self::R);
    /// `if a > b { then } else { other }` lane by lane (`a > b` is false where
    /// either is NaN, as the scalar comparison).
    fn select_gt(self, a: Self::R, b: Self::R, then: Self::R, other: Self::R) -> Self::R;
    /// `if a == b { then } else { other }` lane by lane (false where either is
    /// NaN, as the scalar comparison).
    fn select_eq(self, a: Self::R, b: Self::R, then: Self::R, other: Self::R) -> Self::R;
    /// `a[l]` into `v[2 l]` and `b[l]` into `v[2 l + 1]`: the first `2 W` values
    /// of `v` (the inverse of [`Simd::evens_odds`]).
    fn store_interleaved(self, a: Self::R, b: Self::R, v: &mut [f32]);
    /// The first `W` bytes of `v`, each as an `f32`.
    #[inline(always)]
    fn load_bytes(self, v: &[u8]) -> Self::R {
        let v = &v[..Self::W];
        let lanes: [f32; 16] = std::array::from_fn(|l| v.get(l).map_or(0.0, |&b| f32::from(b)));
        self.load(&lanes)
    }
    /// Into the first `W` bytes of `v`, each lane converted as `lane as u8` (for
    /// lanes holding whole numbers from 0 to 255, such as a window's argmax).
    #[inline(always)]
    fn store_bytes(self, r: Self::R, v: &mut [u8]) {
        let mut lanes = [0.0f32; 16];
        self.store(r, &mut lanes);
        for (b, &l) in v[..Self::W].iter_mut().zip(&lanes) {
            *b = l as u8;
        }
    }
}

/// [`Simd::reduce16`]'s tree on plain values.
#[inline(always)]
fn reduce16_tree(v: &[f32; 16]) -> f32 {
    let s8: [f32; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
    let s4: [f32; 4] = std::array::from_fn(|i| s8[i] + s8[i + 4]);
    let s2: [f32; 2] = std::array::from_fn(|i| s4[i] + s4[i + 2]);
    s2[0] + s2[1]
}

/// The portable token: plain arrays of 8, separate multiplies and adds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

impl Simd for Portable {
    const W: usize = 8;
    const REGISTERS: usize = 16;
    type R = [f32; 8];
    #[inline(always)]
    fn splat(self, v: f32) -> [f32; 8] {
        [v; 8]
    }
    #[inline(always)]
    fn load(self, v: &[f32]) -> [f32; 8] {
        // one bounds check for the register, not one per lane (which kept the
        // compiler from vectorising the loads)
        let v = &v[..8];
        std::array::from_fn(|l| v[l])
    }
    #[inline(always)]
    fn store(self, r: [f32; 8], v: &mut [f32]) {
        v[..8].copy_from_slice(&r)
    }
    #[inline(always)]
    fn store_window(self, r: [f32; 8], v: &mut [f32], lo: usize, hi: usize) {
        v[..8][lo..hi].copy_from_slice(&r[lo..hi])
    }
    #[inline(always)]
    fn mul_add(self, a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| a[l] * b[l] + c[l])
    }
    #[inline(always)]
    fn add(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| a[l] + b[l])
    }
    #[inline(always)]
    fn sub(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| a[l] - b[l])
    }
    #[inline(always)]
    fn mul(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| a[l] * b[l])
    }
    #[inline(always)]
    fn mul_add1(self, a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn transpose8(self, (src, ss): (&[f32], usize), (dst, ds): (&mut [f32], usize)) {
        for i in 0..8 {
            for j in 0..8 {
                dst[i * ds + j] = src[j * ss + i];
            }
        }
    }
    #[inline(always)]
    fn reduce16(self, v: &[f32; 16]) -> f32 {
        reduce16_tree(v)
    }
    #[inline(always)]
    fn add_pairs(self, v: &[f32]) -> [f32; 8] {
        std::array::from_fn(|l| v[2 * l] + v[2 * l + 1])
    }
    #[inline(always)]
    fn pairs_of(self, v: &[f32]) -> [f32; 8] {
        let v = &v[..4];
        std::array::from_fn(|l| v[l / 2])
    }
    #[inline(always)]
    fn evens_odds(self, v: &[f32]) -> ([f32; 8], [f32; 8]) {
        let v = &v[..16];
        (
            std::array::from_fn(|l| v[2 * l]),
            std::array::from_fn(|l| v[2 * l + 1]),
        )
    }
    #[inline(always)]
    fn select_gt(self, a: [f32; 8], b: [f32; 8], then: [f32; 8], other: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| if a[l] > b[l] { then[l] } else { other[l] })
    }
    #[inline(always)]
    fn select_eq(self, a: [f32; 8], b: [f32; 8], then: [f32; 8], other: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| if a[l] == b[l] { then[l] } else { other[l] })
    }
    #[inline(always)]
    fn store_interleaved(self, a: [f32; 8], b: [f32; 8], v: &mut [f32]) {
        for (pair, (a, b)) in v[..16].chunks_exact_mut(2).zip(a.into_iter().zip(b)) {
            (pair[0], pair[1]) = (a, b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! AVX2 and AVX-512 tokens. A token exists only where its instructions do
    //! ([`super::isa`] returns only supported sets), which is what makes the
    //! intrinsics below sound to call.
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX2 + FMA: `__m256`, 8 lanes.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2(());
    /// AVX-512F: `__m512`, 16 lanes.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx512(());

    impl Avx2 {
        /// The token, for code that has checked (through `isa()`) that the CPU
        /// has AVX2 and FMA.
        #[inline(always)]
        pub fn assume() -> Self {
            Avx2(())
        }
        /// Runs `f` compiled with AVX2 and FMA.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx,avx2,fma")]
        pub unsafe fn vectorize<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
    }

    impl Avx512 {
        /// The token, for code that has checked that the CPU has AVX-512F.
        #[inline(always)]
        pub fn assume() -> Self {
            Avx512(())
        }
        /// Runs `f` compiled with AVX-512F (and AVX2, FMA).
        ///
        /// # Safety
        /// The CPU must support AVX-512F, AVX2 and FMA.
        #[target_feature(enable = "avx,avx2,fma,avx512f")]
        pub unsafe fn vectorize<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
    }

    /// [`Simd::reduce16`] on AVX registers (both tokens have AVX): the same tree.
    #[inline(always)]
    fn reduce16_avx(v: &[f32; 16]) -> f32 {
        // SAFETY: called only through a token (the CPU has AVX); the loads read
        // v[0..8] and v[8..16]
        unsafe {
            let s8 = _mm256_add_ps(_mm256_loadu_ps(v.as_ptr()), _mm256_loadu_ps(v.as_ptr().add(8)));
            let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
        }
    }

    /// [`Simd::add_pairs`] with AVX2: a horizontal add of two registers gives the
    /// pairs in the order (0, 1, 4, 5 | 2, 3, 6, 7) of 64-bit quarters, put back
    /// in order by one permute.
    #[inline(always)]
    fn add_pairs_avx2(v: &[f32]) -> __m256 {
        let v = &v[..16];
        // SAFETY: called only through the AVX2 token (the CPU has AVX2); the
        // loads read v[0..16]
        unsafe {
            let a = _mm256_loadu_ps(v.as_ptr());
            let b = _mm256_loadu_ps(v.as_ptr().add(8));
            let h = _mm256_castps_pd(_mm256_hadd_ps(a, b));
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(h))
        }
    }

    /// [`Simd::add_pairs`] with AVX-512: the even and the odd values of two
    /// registers ([`evens_odds_avx512`]), added.
    #[inline(always)]
    fn add_pairs_avx512(v: &[f32]) -> __m512 {
        let (even, odd) = evens_odds_avx512(v);
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F)
        unsafe { _mm512_add_ps(even, odd) }
    }

    /// [`Simd::evens_odds`] with AVX2: two shuffles pick the even and the odd
    /// values of two registers in the order (0, 2, 8, 10 | 4, 6, 12, 14) of
    /// 64-bit quarters, put back in order by one permute each.
    #[inline(always)]
    fn evens_odds_avx2(v: &[f32]) -> (__m256, __m256) {
        let v = &v[..16];
        // SAFETY: called only through the AVX2 token (the CPU has AVX2); the
        // loads read v[0..16]
        unsafe {
            let a = _mm256_loadu_ps(v.as_ptr());
            let b = _mm256_loadu_ps(v.as_ptr().add(8));
            let even = _mm256_castps_pd(_mm256_shuffle_ps::<0b10_00_10_00>(a, b));
            let odd = _mm256_castps_pd(_mm256_shuffle_ps::<0b11_01_11_01>(a, b));
            (
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(even)),
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(odd)),
            )
        }
    }

    /// [`Simd::evens_odds`] with AVX-512: one permute of two registers each.
    #[inline(always)]
    fn evens_odds_avx512(v: &[f32]) -> (__m512, __m512) {
        let v = &v[..32];
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F);
        // the loads read v[0..32]
        unsafe {
            let a = _mm512_loadu_ps(v.as_ptr());
            let b = _mm512_loadu_ps(v.as_ptr().add(16));
            let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
            let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
            (
                _mm512_permutex2var_ps(a, even, b),
                _mm512_permutex2var_ps(a, odd, b),
            )
        }
    }

    /// [`Simd::select_gt`] with AVX2: a blend under an ordered compare's mask.
    #[inline(always)]
    fn select_gt_avx2(a: __m256, b: __m256, then: __m256, other: __m256) -> __m256 {
        // SAFETY: called only through the AVX2 token (the CPU has AVX2)
        unsafe { _mm256_blendv_ps(other, then, _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)) }
    }

    /// [`Simd::select_gt`] with AVX-512: a blend under an ordered compare's
    /// lane mask.
    #[inline(always)]
    fn select_gt_avx512(a: __m512, b: __m512, then: __m512, other: __m512) -> __m512 {
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F)
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b), other, then) }
    }

    /// [`Simd::select_eq`] with AVX2: a blend under an ordered compare's mask.
    #[inline(always)]
    fn select_eq_avx2(a: __m256, b: __m256, then: __m256, other: __m256) -> __m256 {
        // SAFETY: called only through the AVX2 token (the CPU has AVX2)
        unsafe { _mm256_blendv_ps(other, then, _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b)) }
    }

    /// [`Simd::select_eq`] with AVX-512: a blend under an ordered compare's
    /// lane mask.
    #[inline(always)]
    fn select_eq_avx512(a: __m512, b: __m512, then: __m512, other: __m512) -> __m512 {
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F)
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b), other, then) }
    }

    /// [`Simd::store_interleaved`] with AVX2: the unpacks interleave within
    /// 128-bit halves, (a0 b0 a1 b1 | a4 b4 a5 b5) and (a2 b2 a3 b3 | a6 b6 a7
    /// b7); two half permutes put them in order.
    #[inline(always)]
    fn store_interleaved_avx2(a: __m256, b: __m256, v: &mut [f32]) {
        let v = &mut v[..16];
        // SAFETY: called only through the AVX2 token (the CPU has AVX2); the
        // stores write v[0..16]
        unsafe {
            let (low, high) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
            _mm256_storeu_ps(v.as_mut_ptr(), _mm256_permute2f128_ps::<0x20>(low, high));
            _mm256_storeu_ps(v.as_mut_ptr().add(8), _mm256_permute2f128_ps::<0x31>(low, high));
        }
    }

    /// [`Simd::store_interleaved`] with AVX-512: one permute of the two
    /// registers for each half (an index of 16 or more picks lane `index - 16`
    /// of `b`).
    #[inline(always)]
    fn store_interleaved_avx512(a: __m512, b: __m512, v: &mut [f32]) {
        let v = &mut v[..32];
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F);
        // the stores write v[0..32]
        unsafe {
            let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            _mm512_storeu_ps(v.as_mut_ptr(), _mm512_permutex2var_ps(a, low, b));
            _mm512_storeu_ps(v.as_mut_ptr().add(16), _mm512_permutex2var_ps(a, high, b));
        }
    }

    /// [`Simd::store_window`] with AVX2: a store under a mask of lane compares.
    #[inline(always)]
    fn store_window_avx2(r: __m256, v: &mut [f32], lo: usize, hi: usize) {
        let v = &mut v[..8];
        assert!(lo <= hi && hi <= 8);
        // SAFETY: called only through the AVX2 token (the CPU has AVX2); the
        // store writes (at most) v[0..8]
        unsafe {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let from = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo as i32 - 1));
            let below = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi as i32), lane);
            _mm256_maskstore_ps(v.as_mut_ptr(), _mm256_and_si256(from, below), r)
        }
    }

    /// [`Simd::store_window`] with AVX-512: one store under a lane mask.
    #[inline(always)]
    fn store_window_avx512(r: __m512, v: &mut [f32], lo: usize, hi: usize) {
        let v = &mut v[..16];
        assert!(lo <= hi && hi <= 16);
        let keep = ((1u32 << hi) - (1u32 << lo)) as u16;
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F);
        // the store writes (at most) v[0..16]
        unsafe { _mm512_mask_storeu_ps(v.as_mut_ptr(), keep, r) }
    }

    /// [`Simd::pairs_of`] with AVX2: four values loaded, each put in two lanes
    /// by one permute.
    #[inline(always)]
    fn pairs_of_avx2(v: &[f32]) -> __m256 {
        let v = &v[..4];
        // SAFETY: called only through the AVX2 token (the CPU has AVX2); the
        // load reads v[0..4]
        unsafe {
            let low = _mm256_castps128_ps256(_mm_loadu_ps(v.as_ptr()));
            _mm256_permutevar8x32_ps(low, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3))
        }
    }

    /// [`Simd::pairs_of`] with AVX-512: eight values loaded, each put in two
    /// lanes by one permute.
    #[inline(always)]
    fn pairs_of_avx512(v: &[f32]) -> __m512 {
        let v = &v[..8];
        // SAFETY: called only through the AVX-512 token (the CPU has AVX-512F);
        // the load reads v[0..8]
        unsafe {
            let low = _mm512_castps256_ps512(_mm256_loadu_ps(v.as_ptr()));
            let twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            _mm512_permutexvar_ps(twice, low)
        }
    }

    /// [`Simd::transpose8`] on AVX registers (both tokens have AVX): 8 row loads,
    /// 24 shuffles, 8 row stores.
    #[inline(always)]
    fn transpose8_avx((src, ss): (&[f32], usize), (dst, ds): (&mut [f32], usize)) {
        assert!(
            src.len() >= 7 * ss + 8 && dst.len() >= 7 * ds + 8,
            "transpose8: the block reaches past its slice"
        );
        // SAFETY: called only through a token, whose existence means the CPU has
        // AVX; the assert above keeps every row of 8 values inside its slice.
        unsafe {
            let (p, q) = (src.as_ptr(), dst.as_mut_ptr());
            let r0 = _mm256_loadu_ps(p);
            let r1 = _mm256_loadu_ps(p.add(ss));
            let r2 = _mm256_loadu_ps(p.add(2 * ss));
            let r3 = _mm256_loadu_ps(p.add(3 * ss));
            let r4 = _mm256_loadu_ps(p.add(4 * ss));
            let r5 = _mm256_loadu_ps(p.add(5 * ss));
            let r6 = _mm256_loadu_ps(p.add(6 * ss));
            let r7 = _mm256_loadu_ps(p.add(7 * ss));
            // pairs of rows interleaved, then pairs of pairs, then the halves
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            let t4 = _mm256_unpacklo_ps(r4, r5);
            let t5 = _mm256_unpackhi_ps(r4, r5);
            let t6 = _mm256_unpacklo_ps(r6, r7);
            let t7 = _mm256_unpackhi_ps(r6, r7);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            _mm256_storeu_ps(q, _mm256_permute2f128_ps::<0x20>(s0, s4));
            _mm256_storeu_ps(q.add(ds), _mm256_permute2f128_ps::<0x20>(s1, s5));
            _mm256_storeu_ps(q.add(2 * ds), _mm256_permute2f128_ps::<0x20>(s2, s6));
            _mm256_storeu_ps(q.add(3 * ds), _mm256_permute2f128_ps::<0x20>(s3, s7));
            _mm256_storeu_ps(q.add(4 * ds), _mm256_permute2f128_ps::<0x31>(s0, s4));
            _mm256_storeu_ps(q.add(5 * ds), _mm256_permute2f128_ps::<0x31>(s1, s5));
            _mm256_storeu_ps(q.add(6 * ds), _mm256_permute2f128_ps::<0x31>(s2, s6));
            _mm256_storeu_ps(q.add(7 * ds), _mm256_permute2f128_ps::<0x31>(s3, s7));
        }
    }

    /// `impl Simd` for an x86 token: its register type, width and the
    /// intrinsics of each operation (one instruction set's names).
    macro_rules! impl_x86 {
        ($token:ty, $r:ty, $w:literal, registers: $regs:literal,
         set1: $set1:ident, loadu: $loadu:ident, storeu: $storeu:ident,
         fmadd: $fmadd:ident, add: $add:ident, sub: $sub:ident, mul: $mul:ident,
         add_pairs: $pairs:ident, pairs_of: $pairs_of:ident, store_window: $window:ident,
         evens_odds: $evens_odds:ident, select_gt: $select_gt:ident, select_eq: $select_eq:ident,
         store_interleaved: $interleaved:ident) => {
            // SAFETY (every method): the token exists only on a CPU with the
            // instructions; each pointer is that of a slice sliced to the
            // register's length first (a short slice panics before any load or
            // store).
            impl Simd for $token {
                const W: usize = $w;
                const REGISTERS: usize = $regs;
                type R = $r;
                #[inline(always)]
                fn splat(self, v: f32) -> $r {
                    unsafe { $set1(v) }
                }
                #[inline(always)]
                fn load(self, v: &[f32]) -> $r {
                    let v = &v[..$w];
                    unsafe { $loadu(v.as_ptr()) }
                }
                #[inline(always)]
                fn store(self, r: $r, v: &mut [f32]) {
                    let v = &mut v[..$w];
                    unsafe { $storeu(v.as_mut_ptr(), r) }
                }
                #[inline(always)]
                fn store_window(self, r: $r, v: &mut [f32], lo: usize, hi: usize) {
                    $window(r, v, lo, hi)
                }
                #[inline(always)]
                fn mul_add(self, a: $r, b: $r, c: $r) -> $r {
                    unsafe { $fmadd(a, b, c) }
                }
                #[inline(always)]
                fn add(self, a: $r, b: $r) -> $r {
                    unsafe { $add(a, b) }
                }
                #[inline(always)]
                fn sub(self, a: $r, b: $r) -> $r {
                    unsafe { $sub(a, b) }
                }
                #[inline(always)]
                fn mul(self, a: $r, b: $r) -> $r {
                    unsafe { $mul(a, b) }
                }
                #[inline(always)]
                fn mul_add1(self, a: f32, b: f32, c: f32) -> f32 {
                    a.mul_add(b, c)
                }
                #[inline(always)]
                fn transpose8(self, src: (&[f32], usize), dst: (&mut [f32], usize)) {
                    transpose8_avx(src, dst)
                }
                #[inline(always)]
                fn reduce16(self, v: &[f32; 16]) -> f32 {
                    reduce16_avx(v)
                }
                #[inline(always)]
                fn add_pairs(self, v: &[f32]) -> $r {
                    $pairs(v)
                }
                #[inline(always)]
                fn pairs_of(self, v: &[f32]) -> $r {
                    $pairs_of(v)
                }
                #[inline(always)]
                fn evens_odds(self, v: &[f32]) -> ($r, $r) {
                    $evens_odds(v)
                }
                #[inline(always)]
                fn select_gt(self, a: $r, b: $r, then: $r, other: $r) -> $r {
                    $select_gt(a, b, then, other)
                }
                #[inline(always)]
                fn select_eq(self, a: $r, b: $r, then: $r, other: $r) -> $r {
                    $select_eq(a, b, then, other)
                }
                #[inline(always)]
                fn store_interleaved(self, a: $r, b: $r, v: &mut [f32]) {
                    $interleaved(a, b, v)
                }
            }
        };
    }

    impl_x86!(Avx2, __m256, 8, registers: 16,
        set1: _mm256_set1_ps, loadu: _mm256_loadu_ps, storeu: _mm256_storeu_ps,
        fmadd: _mm256_fmadd_ps, add: _mm256_add_ps, sub: _mm256_sub_ps, mul: _mm256_mul_ps,
        add_pairs: add_pairs_avx2, pairs_of: pairs_of_avx2, store_window: store_window_avx2,
        evens_odds: evens_odds_avx2, select_gt: select_gt_avx2, select_eq: select_eq_avx2,
        store_interleaved: store_interleaved_avx2);
    impl_x86!(Avx512, __m512, 16, registers: 32,
        set1: _mm512_set1_ps, loadu: _mm512_loadu_ps, storeu: _mm512_storeu_ps,
        fmadd: _mm512_fmadd_ps, add: _mm512_add_ps, sub: _mm512_sub_ps, mul: _mm512_mul_ps,
        add_pairs: add_pairs_avx512, pairs_of: pairs_of_avx512, store_window: store_window_avx512,
        evens_odds: evens_odds_avx512, select_gt: select_gt_avx512, select_eq: select_eq_avx512,
        store_interleaved: store_interleaved_avx512);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> [[f32; 8]; 8] {
        std::array::from_fn(|i| std::array::from_fn(|j| ((i * 8 + j) as f32).sin()))
    }

    /// `x * y + z + 0.5` on 16 values, then a transpose, through token `s`.
    #[inline(always)]
    fn exercise<S: Simd>(s: S, (x, y, z): (&[f32], &[f32], &[f32])) -> Vec<u32> {
        let mut out = vec![0.0f32; 16];
        for h in (0..16).step_by(S::W) {
            let r = s.mul_add(s.load(&x[h..]), s.load(&y[h..]), s.load(&z[h..]));
            s.store(s.add(r, s.splat(0.5)), &mut out[h..]);
        }
        // the 8 x 8 block at stride 9 into one at stride 10
        let src: Vec<f32> = (0..7 * 9 + 8).map(|k| rows()[k / 9][(k % 9).min(7)]).collect();
        let mut dst = vec![0.0; 7 * 10 + 8];
        s.transpose8((&src, 9), (&mut dst, 10));
        out.extend((0..64).map(|k| dst[k / 8 * 10 + k % 8]));
        let sixteen: [f32; 16] = std::array::from_fn(|i| x[i] * 1e3 + y[i]);
        out.push(s.reduce16(&sixteen));
        // the neighbouring pairs of 32 values
        let neighbours: Vec<f32> = x.iter().chain(y).copied().collect();
        for h in (0..16).step_by(S::W) {
            let mut sums = [0.0; 16];
            s.store(s.add_pairs(&neighbours[2 * h..]), &mut sums);
            out.extend_from_slice(&sums[..S::W]);
        }
        // each of 16 values twice
        for h in (0..16).step_by(S::W / 2) {
            let mut twice = [0.0; 16];
            s.store(s.pairs_of(&x[h..]), &mut twice);
            out.extend_from_slice(&twice[..S::W]);
        }
        // differences, stored in all but each register's first and last lane
        let mut kept = [7.0; 16];
        for h in (0..16).step_by(S::W) {
            s.store_window(
                s.sub(s.load(&x[h..]), s.load(&y[h..])),
                &mut kept[h..],
                1,
                S::W - 1,
            );
        }
        out.extend_from_slice(&kept);
        // the even and the odd values of 32, and the larger of each pair by
        // `select_gt` (x and y hold NaNs and ties), and 16 whole numbers as bytes
        for h in (0..16).step_by(S::W) {
            let (mut even, mut odd) = ([0.0; 16], [0.0; 16]);
            let (e, o) = s.evens_odds(&neighbours[2 * h..]);
            s.store(e, &mut even);
            s.store(o, &mut odd);
            out.extend_from_slice(&even[..S::W]);
            out.extend_from_slice(&odd[..S::W]);
        }
        let mut larger = [0.0; 16];
        for h in (0..16).step_by(S::W) {
            let (a, b) = (s.load(&x[h..]), s.load(&y[h..]));
            s.store(s.select_gt(a, b, a, b), &mut larger[h..]);
        }
        out.extend_from_slice(&larger);
        let whole: Vec<f32> = (0..16).map(|i| (i * 17) as f32).collect();
        let mut bytes = [0u8; 16];
        for h in (0..16).step_by(S::W) {
            s.store_bytes(s.load(&whole[h..]), &mut bytes[h..]);
        }
        out.extend(bytes.iter().map(|&b| f32::from(b)));
        // the bytes back; x where a register of 17, 1 and NaN equals 17, y
        // elsewhere; x and y interleaved
        let (mut back, mut equal) = ([0.0; 16], [0.0; 16]);
        let seventeen = [17.0, 1.0, 17.0, f32::NAN].repeat(4);
        for h in (0..16).step_by(S::W) {
            s.store(s.load_bytes(&bytes[h..]), &mut back[h..]);
            let (a, b) = (s.load(&seventeen[h..]), s.splat(17.0));
            s.store(
                s.select_eq(a, b, s.load(&x[h..]), s.load(&y[h..])),
                &mut equal[h..],
            );
        }
        out.extend_from_slice(&back);
        out.extend_from_slice(&equal);
        let mut pairs = [0.0; 32];
        for h in (0..16).step_by(S::W) {
            s.store_interleaved(s.load(&x[h..]), s.load(&y[h..]), &mut pairs[2 * h..]);
        }
        out.extend_from_slice(&pairs);
        out.iter().map(|v| v.to_bits()).collect()
    }

    /// Register arithmetic: the FMA paths give `fma(x, y, z) + 0.5` bit for bit,
    /// the portable one the two-rounding version; transposes agree. (Tokens are
    /// made directly, so the kernels' global choice is left alone.)
    #[test]
    fn registers_agree_across_instruction_sets() {
        let mut x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let mut y: Vec<f32> = (0..16).map(|i| (i as f32 * 1.3).cos()).collect();
        // a tie, a NaN on either side, and zeros of both signs
        (x[3], y[3], x[5], y[9], x[12], y[12]) = (0.25, 0.25, f32::NAN, f32::NAN, 0.0, -0.0);
        let z: Vec<f32> = (0..16).map(|i| (i as f32 * 0.1).tan()).collect();
        let args = (&x[..], &y[..], &z[..]);
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut results = vec![(Isa::Portable, exercise(Portable, args))];
        #[cfg(target_arch = "x86_64")]
        {
            use x86::{Avx2, Avx512};
            if Isa::Avx2.is_supported() {
                // SAFETY: checked just above
                let bits = unsafe { Avx2::vectorize(|| exercise(Avx2::assume(), args)) };
                results.push((Isa::Avx2, bits));
            }
            if Isa::Avx512.is_supported() {
                // SAFETY: checked just above
                let bits = unsafe { Avx512::vectorize(|| exercise(Avx512::assume(), args)) };
                results.push((Isa::Avx512, bits));
            }
        }
        let t: Vec<u32> = (0..64).map(|k| rows()[k % 8][k / 8].to_bits()).collect();
        for (i, bits) in &results {
            for l in 0..16 {
                let fused = if *i == Isa::Portable {
                    x[l] * y[l] + z[l]
                } else {
                    x[l].mul_add(y[l], z[l])
                };
                assert_eq!(bits[l], (fused + 0.5).to_bits(), "{i} lane {l}");
            }
            assert_eq!(bits[16..80], t[..], "{i} transpose");
            let sixteen: [f32; 16] = std::array::from_fn(|i| x[i] * 1e3 + y[i]);
            assert_eq!(bits[80], reduce16_tree(&sixteen).to_bits(), "{i} reduce16");
            let neighbours: Vec<f32> = x.iter().chain(&y).copied().collect();
            for l in 0..16 {
                let want = neighbours[2 * l] + neighbours[2 * l + 1];
                assert_eq!(bits[81 + l], want.to_bits(), "{i} add_pairs lane {l}");
            }
            for l in 0..32 {
                assert_eq!(bits[97 + l], x[l / 2].to_bits(), "{i} pairs_of lane {l}");
            }
            let width = if *i == Isa::Avx512 { 16 } else { 8 };
            for l in 0..16 {
                let stored = (1..width - 1).contains(&(l % width));
                let want = if stored { x[l] - y[l] } else { 7.0 };
                assert_eq!(bits[129 + l], want.to_bits(), "{i} sub and store_window lane {l}");
            }
            // evens_odds, register by register: its W evens, then its W odds
            let mut parity = vec![];
            for h in (0..16).step_by(width) {
                for odd in 0..2 {
                    parity.extend((0..width).map(|l| neighbours[2 * (h + l) + odd].to_bits()));
                }
            }
            assert_eq!(bits[145..177], parity[..], "{i} evens_odds");
            for l in 0..16 {
                let want = if x[l] > y[l] { x[l] } else { y[l] };
                assert_eq!(bits[177 + l], want.to_bits(), "{i} select_gt lane {l}");
                assert_eq!(
                    bits[193 + l],
                    ((l * 17) as f32).to_bits(),
                    "{i} store_bytes lane {l}"
                );
                assert_eq!(
                    bits[209 + l],
                    ((l * 17) as f32).to_bits(),
                    "{i} load_bytes lane {l}"
                );
                let want = if l % 4 == 0 || l % 4 == 2 { x[l] } else { y[l] };
                assert_eq!(bits[225 + l], want.to_bits(), "{i} select_eq lane {l}");
                assert_eq!(
                    bits[241 + 2 * l],
                    x[l].to_bits(),
                    "{i} store_interleaved lane {l}"
                );
                assert_eq!(
                    bits[242 + 2 * l],
                    y[l].to_bits(),
                    "{i} store_interleaved lane {l}"
                );
            }
            assert_eq!(bits.len(), 273, "{i}");
        }
    }

    #[test]
    fn names_and_refusals() {
        for i in Isa::ALL {
            assert_eq!(i.name().parse::<Isa>().unwrap(), i);
        }
        assert!(matches!("sse9".parse::<Isa>(), Err(IsaError::Unknown(_))));
        assert!(Isa::Portable.is_supported());
        assert_eq!(Isa::best(), *Isa::supported().last().unwrap());
        if !Isa::Avx512.is_supported() {
            let e = Isa::Avx512.check().unwrap_err();
            assert!(e.to_string().contains("does not support avx512"), "{e}");
        }
    }
}
