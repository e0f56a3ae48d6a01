//! Sixteen images **interleaved value by value**: `[values, 16]`, each value of an
//! image followed by the same value of the next. In this layout every operation
//! that treats the images alike is a vector operation on one [`Lanes`] — a
//! convolution's multiply-add is a weight times the same pixel of 16 images — and
//! the kernels need no patch matrix and no padding of rows to a vector size.
//!
//! The parallel convolution kernels interleave their inputs and de-interleave
//! their outputs on every call. A forward pass can instead stay interleaved from
//! the input to the scores, with each layer's `forward_interleaved` kernel
//! ([`crate::conv::forward_interleaved`], [`crate::subsample::forward_interleaved`],
//! [`crate::fc::forward_interleaved`]; element-wise functions run on
//! [`values_mut`] as they are), which is how `lenet-layers` runs inference.
//!
//! A group holds up to 16 images. The lanes of missing images are zero when
//! interleaved, carry whatever the kernels compute from them, and are dropped when
//! de-interleaved. Each image's values are computed in the same order whichever
//! lane it is in.
//!
//! ```
//! use tensor_ops::interleaved::{deinterleave, interleave, Lanes};
//!
//! // three images of two values each
//! let images = [1.0, 2.0, 10.0, 20.0, 100.0, 200.0];
//! let mut lanes = vec![Lanes::default(); 2];
//! interleave(&images, &mut lanes);
//! assert_eq!(lanes[1].0[..4], [2.0, 20.0, 200.0, 0.0]);
//! let mut back = [0.0; 6];
//! deinterleave(&lanes, &mut back);
//! assert_eq!(back, images);
//! ```

use crate::simd::{with_isa, Simd};
use crate::Algo;

/// Images per group: one AVX-512 register of `f32`, two AVX2 registers.
pub const LANES: usize = 16;

/// Fewest images worth interleaving: half a group (one AVX2 register). Smaller
/// batches would compute mostly empty lanes.
pub const MIN_BATCH: usize = 8;

/// Does a forward pass of `batch` images with `algo` run interleaved from the
/// input to the scores? With [`Algo::Parallel`] from [`MIN_BATCH`] images: the
/// other variants keep their own kernels (`--kernels naive` stays the readable
/// loops), and fewer images would fill less than half a group.
///
/// ```
/// use tensor_ops::{interleaved, Algo};
/// assert!(interleaved::applies(Algo::Parallel, 1000));
/// assert!(!interleaved::applies(Algo::Parallel, 1));
/// assert!(!interleaved::applies(Algo::Naive, 1000));
/// ```
pub fn applies(algo: Algo, batch: usize) -> bool {
    algo == Algo::Parallel && batch >= MIN_BATCH
}

/// One value of each of sixteen images, aligned to its size so that no vector
/// load crosses a cache line (measured together with border-only zeroing of
/// padded inputs: C3 at batch 256 went from 60 to 90 GFLOP/s forward;
/// docs/benchmarks.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Lanes(pub [f32; LANES]);

impl Lanes {
    /// Sixteen zeros.
    pub const ZERO: Lanes = Lanes([0.0; LANES]);
}

impl AsRef<[f32]> for Lanes {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

impl AsMut<[f32]> for Lanes {
    fn as_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

/// The values of `v`, lane by lane: `[v.len(), 16]`.
pub fn values(v: &[Lanes]) -> &[f32] {
    bytemuck::cast_slice(v)
}

/// [`values`] to write: for element-wise functions, which do not care about the
/// layout.
pub fn values_mut(v: &mut [Lanes]) -> &mut [f32] {
    bytemuck::cast_slice_mut(v)
}

/// Interleaves the images `images [count, dst.len()]`, `count <= 16`, into
/// `dst [dst.len(), 16]`; the lanes of missing images are zero.
///
/// Panics if `images` is not a whole number of images of `dst.len()` values, or
/// holds more than 16.
pub fn interleave(images: &[f32], dst: &mut [Lanes]) {
    let count = image_count(images.len(), dst.len());
    let dst: &mut [[f32; LANES]] = bytemuck::cast_slice_mut(dst);
    with_isa!(s => interleave_on(s, (images, dst.len(), count), dst))
}

/// The inverse of [`interleave`]: the first `count` lanes of `src [src.len(), 16]`
/// into `images [count, src.len()]`.
pub fn deinterleave(src: &[Lanes], images: &mut [f32]) {
    let count = image_count(images.len(), src.len());
    let src: &[[f32; LANES]] = bytemuck::cast_slice(src);
    with_isa!(s => deinterleave_on(s, src, (images, src.len(), count)))
}

/// Images of `per_image` values in `len` values, checked.
fn image_count(len: usize, per_image: usize) -> usize {
    assert!(
        per_image > 0 && len.is_multiple_of(per_image) && len / per_image <= LANES,
        "{len} values are not up to {LANES} images of {per_image}"
    );
    len / per_image
}

/// Lanes `h..h + S::W` of `v` (a [`Lanes`], or the `[f32; L]` of a plane of `L`
/// lanes) in a register.
#[inline(always)]
pub(crate) fn get<S: Simd>(s: S, v: &(impl AsRef<[f32]> + ?Sized), h: usize) -> S::R {
    s.load(&v.as_ref()[h..])
}

/// A register into lanes `h..h + S::W` of `v`.
#[inline(always)]
pub(crate) fn set<S: Simd>(s: S, v: &mut (impl AsMut<[f32]> + ?Sized), h: usize, r: S::R) {
    s.store(r, &mut v.as_mut()[h..])
}

/// The first lane of each register's worth of `lanes` lanes that holds one of
/// `count` images: `0` alone for a group of at most `S::W` images (AVX2 and the
/// portable path skip the second half of a group of at most 8).
#[inline(always)]
pub(crate) fn live_halves<S: Simd>(count: usize, lanes: usize) -> impl Iterator<Item = usize> {
    // a literal 0 when the register holds all the lanes, so that the kernels'
    // loads need no offset (nor its bounds checks)
    (0..count.min(lanes))
        .step_by(S::W)
        .map(move |h| if lanes == S::W { 0 } else { h })
}

/// Interleaves `count <= L` runs of `dst.len()` values, one per image, run `l`
/// at `src[l * stride..]`: `dst[j][l] = src[l * stride + j]`, zero for the lanes
/// of missing images (`L`: 16, or 8 for a plane of half a group). Each whole
/// block of 8 runs goes 8 values at a time through an 8 x 8 register transpose.
#[inline(always)]
pub(crate) fn interleave_on<S: Simd, const L: usize>(
    s: S,
    (src, stride, count): (&[f32], usize, usize),
    dst: &mut [[f32; L]],
) {
    debug_assert!(count <= L && L.is_multiple_of(8));
    let n = dst.len();
    let whole = n - n % 8;
    let blocks = count / 8;
    let dst = dst.as_flattened_mut();
    // both blocks' halves of each cache line of dst written one after the other
    // (a block at a time, the first halves of a long run's lines left L1 before
    // the second came)
    for j in (0..whole).step_by(8) {
        for b in 0..blocks {
            s.transpose8(
                (&src[b * 8 * stride + j..], stride),
                (&mut dst[j * L + b * 8..], L),
            );
        }
    }
    // the last values of the whole blocks' runs (fewer than 8): through a block
    // transposed into a buffer, when the runs reach 8 values on (the next run's),
    // else one by one (in a gather, each row of a map is such a run: 10 values
    // for C3's output, 14 for S2's)
    let tail = n - whole;
    let reach = blocks > 0 && (blocks * 8 - 1) * stride + whole + 8 <= src.len();
    for b in 0..blocks.min(usize::from(tail > 0) * L) {
        let lanes = b * 8..b * 8 + 8;
        if reach {
            let mut block = [0.0f32; 64];
            s.transpose8((&src[b * 8 * stride + whole..], stride), (&mut block, 8));
            for (j, row) in (whole..n).zip(block.chunks_exact(8)) {
                dst[j * L..][lanes.clone()].copy_from_slice(row);
            }
        } else {
            for j in whole..n {
                for l in lanes.clone() {
                    dst[j * L + l] = src[l * stride + j];
                }
            }
        }
    }
    // the lanes past the whole blocks: the last images, then zeros
    if blocks * 8 < L {
        for (j, d) in dst.chunks_exact_mut(L).enumerate() {
            for (l, d) in d.iter_mut().enumerate().skip(blocks * 8) {
                *d = if l < count { src[l * stride + j] } else { 0.0 };
            }
        }
    }
}

/// The inverse of [`interleave_on`]: `dst[l * stride + j] = src[j][l]` for the
/// first `count` lanes.
#[inline(always)]
pub(crate) fn deinterleave_on<S: Simd, const L: usize>(
    s: S,
    src: &[[f32; L]],
    (dst, stride, count): (&mut [f32], usize, usize),
) {
    debug_assert!(count <= L && L.is_multiple_of(8));
    let n = src.len();
    let whole = n - n % 8;
    let blocks = count / 8;
    let src = src.as_flattened();
    for j in (0..whole).step_by(8) {
        for b in 0..blocks {
            s.transpose8(
                (&src[j * L + b * 8..], L),
                (&mut dst[b * 8 * stride + j..], stride),
            );
        }
    }
    for l in 0..count {
        let from = if l < blocks * 8 { whole } else { 0 };
        for j in from..n {
            dst[l * stride + j] = src[j * L + l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_then_deinterleave_is_the_identity() {
        for count in [1, 7, 8, 9, 16] {
            for len in [1, 8, 13, 100] {
                let images: Vec<f32> = (0..count * len).map(|i| i as f32 + 0.5).collect();
                let mut lanes = vec![Lanes([9.0; LANES]); len];
                interleave(&images, &mut lanes);
                for (j, v) in lanes.iter().enumerate() {
                    for (l, &x) in v.0.iter().enumerate() {
                        let want = if l < count { images[l * len + j] } else { 0.0 };
                        assert_eq!(x, want, "{count} images of {len}");
                    }
                }
                let mut back = vec![0.0; images.len()];
                deinterleave(&lanes, &mut back);
                assert_eq!(back, images);
            }
        }
    }

    #[test]
    #[should_panic(expected = "not up to 16 images")]
    fn more_than_sixteen_images_are_refused() {
        interleave(&[0.0; 17], &mut [Lanes::ZERO]);
    }
}
