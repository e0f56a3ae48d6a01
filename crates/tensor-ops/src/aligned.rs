//! [`AlignedVec`]: `f32` values from a 64-byte boundary.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::interleaved::{values, values_mut, Lanes, LANES};

/// A growable buffer of `f32` values that starts on a 64-byte boundary.
///
/// A `Vec<f32>` is only as aligned as the allocator makes it: glibc hands out
/// large blocks 16 bytes past a page boundary, so with AVX-512 every 64-byte
/// vector load from such a buffer spans two cache lines, and with AVX2 every
/// second one. The kernels that stream long rows of weights pay for it where
/// they are bound by the cache's bandwidth: C5's fused backward pass and update
/// at one image (its 192 KB of weights and 192 KB of rates) took 6.4 us from a
/// buffer 16 bytes past a line and 5.1 us from an aligned one, its forward pass
/// 2.1 and 1.7 us (docs/benchmarks.md). Layers keep their parameters, and
/// optimizers their per-parameter rates, in an [`AlignedVec`].
///
/// It dereferences to `[f32]`, so a kernel takes it as any slice; the alignment
/// never changes a value, only how fast it is read.
///
/// ```
/// use tensor_ops::AlignedVec;
///
/// let mut w = AlignedVec::zeros(1000);
/// w[3] = 1.5;
/// assert_eq!(w.as_ptr() as usize % 64, 0);
/// assert_eq!((w.len(), w.iter().sum::<f32>()), (1000, 1.5));
/// let copy = AlignedVec::from(&w[..]);
/// assert_eq!(copy, w);
/// ```
#[derive(Clone, Default)]
pub struct AlignedVec {
    /// Whole cache lines, the first `len` values in use.
    lines: Vec<Lanes>,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        AlignedVec {
            lines: vec![Lanes::ZERO; len.div_ceil(LANES)],
            len,
        }
    }

    /// `len` copies of `value`.
    pub fn filled(len: usize, value: f32) -> Self {
        let mut v = AlignedVec::zeros(len);
        v.fill(value);
        v
    }

    /// Makes the buffer `len` values long: values kept up to the shorter length,
    /// new ones `value`.
    pub fn resize(&mut self, len: usize, value: f32) {
        let old = self.len.min(len);
        self.lines.resize(len.div_ceil(LANES), Lanes::ZERO);
        self.len = len;
        self[old..].fill(value);
    }
}

impl Deref for AlignedVec {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &values(&self.lines)[..self.len]
    }
}

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut values_mut(&mut self.lines)[..self.len]
    }
}

impl From<&[f32]> for AlignedVec {
    fn from(v: &[f32]) -> Self {
        let mut a = AlignedVec::zeros(v.len());
        a.copy_from_slice(v);
        a
    }
}

impl From<Vec<f32>> for AlignedVec {
    fn from(v: Vec<f32>) -> Self {
        AlignedVec::from(&v[..])
    }
}

impl FromIterator<f32> for AlignedVec {
    fn from_iter<I: IntoIterator<Item = f32>>(iter: I) -> Self {
        AlignedVec::from(iter.into_iter().collect::<Vec<f32>>())
    }
}

impl<'a> IntoIterator for &'a AlignedVec {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut AlignedVec {
    type Item = &'a mut f32;
    type IntoIter = std::slice::IterMut<'a, f32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl PartialEq for AlignedVec {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self[..].fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_keeps_values_and_alignment() {
        let mut v = AlignedVec::filled(20, 2.0);
        v.resize(5, 0.0);
        assert_eq!(&v[..], &[2.0; 5]);
        // growing again: the old values past 5 do not come back
        v.resize(40, 7.0);
        assert_eq!(&v[..5], &[2.0; 5]);
        assert!(v[5..].iter().all(|&x| x == 7.0));
        assert_eq!(v.as_ptr() as usize % 64, 0);
        let empty = AlignedVec::zeros(0);
        assert!(empty.is_empty());
        assert_eq!(AlignedVec::from_iter([1.0, 2.0]).to_vec(), vec![1.0, 2.0]);
    }
}
