//! How work is split over threads: every decision of the kind, in one place.
//!
//! Two rules keep results independent of the thread count (tested in
//! `tests/variants.rs`):
//! - work whose pieces are **independent** (images in a forward pass, their input
//!   gradients, element-wise maps) is cut into one task per thread, whatever
//!   its size: each value is computed the same way in any task;
//! - work whose pieces are **summed** (weight gradients over a batch, the two
//!   halves of a training batch) is cut into a fixed number of pieces, never by
//!   the thread count, and the pieces are added in a fixed order.
//!
//! The instruction set never enters these decisions either, so the same seed
//! gives the same model on every CPU with FMA.

use crate::Algo;

/// Does a call of the parallel variant on `batch` images split into tasks? Not
/// for a single image (the paper's per-pattern updates): handing one small task
/// to the pool costs more than it saves. Never decided by the thread count, so
/// that results do not depend on it.
///
/// ```
/// use tensor_ops::{threads::splits, Algo};
/// assert!(splits(Algo::Parallel, 32));
/// assert!(!splits(Algo::Parallel, 1));
/// assert!(!splits(Algo::Im2col, 32));
/// ```
pub fn splits(algo: Algo, batch: usize) -> bool {
    algo == Algo::Parallel && batch > 1
}

/// Threads of the rayon pool the kernels run on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Items per task when `items` independent items are shared out over the
/// threads, at least `min` per task (below that, a task costs more to hand out
/// than it saves).
///
/// ```
/// // on any number of threads: every task has at least 64 items
/// assert!(tensor_ops::threads::per_thread(100, 64) >= 64);
/// ```
pub fn per_thread(items: usize, min: usize) -> usize {
    items.div_ceil(threads()).max(min).max(1)
}

/// Values per piece when an element-wise update of `len` values (an optimizer's
/// step, the mean of two halves' gradients) is shared out over the threads: one
/// piece per thread, at least [`ELEMENTWISE_MIN_PIECE`] values each; `len` or
/// more means one piece, run on the calling thread. Between two training steps
/// these updates keep the other threads busy, so that they are awake when the
/// next step's halves are handed out (a sleeping rayon thread took about 40 us
/// to start its half).
///
/// ```
/// use tensor_ops::threads::{elementwise_piece, ELEMENTWISE_MIN_PIECE};
/// assert!(elementwise_piece(100) >= 100); // too short to split
/// assert!(elementwise_piece(48_120) >= ELEMENTWISE_MIN_PIECE);
/// ```
pub fn elementwise_piece(len: usize) -> usize {
    per_thread(len, ELEMENTWISE_MIN_PIECE)
}

/// Runs the element-wise update `f` over `written` and `read` tensors of one
/// length, in pieces of [`elementwise_piece`] values side by side (one piece on
/// the calling thread when the tensors are short): `f` gets the same range of
/// every tensor.
pub(crate) fn elementwise<const M: usize, const C: usize>(
    mut written: [&mut [f32]; M],
    mut read: [&[f32]; C],
    f: impl Fn([&mut [f32]; M], [&[f32]; C]) + Sync,
) {
    use rayon::prelude::*;
    let len = written.first().map_or(0, |w| w.len());
    assert!(
        written.iter().all(|w| w.len() == len) && read.iter().all(|r| r.len() == len),
        "update: lengths differ"
    );
    let piece = elementwise_piece(len);
    if piece >= len {
        return f(written, read);
    }
    let mut pieces = Vec::with_capacity(len.div_ceil(piece));
    loop {
        let left = written.first().map_or(0, |w| w.len());
        if left == 0 {
            break;
        }
        let n = piece.min(left);
        let heads_written = written.each_mut().map(|w| {
            let (head, tail) = std::mem::take(w).split_at_mut(n);
            *w = tail;
            head
        });
        let heads_read = read.each_mut().map(|r| {
            let (head, tail) = r.split_at(n);
            *r = tail;
            head
        });
        pieces.push((heads_written, heads_read));
    }
    pieces.into_par_iter().for_each(|(w, r)| f(w, r));
}

/// Fewest values per piece of an element-wise update: about a microsecond of work.
pub const ELEMENTWISE_MIN_PIECE: usize = 4096;

/// Where a training batch of `n` images is cut into two halves that run side by
/// side on two copies of a network, or `None` to run it whole (fewer than
/// [`HALVES_FROM`] images). The first half is rounded up to whole half-groups of
/// the lanes convolution (8 images, one AVX2 register), so neither half computes
/// padding lanes it need not; the cut depends on `n` alone.
///
/// ```
/// use tensor_ops::threads::batch_halves;
/// assert_eq!(batch_halves(32), Some(16));
/// assert_eq!(batch_halves(40), Some(24));
/// assert_eq!(batch_halves(8), None);
/// ```
pub fn batch_halves(n: usize) -> Option<usize> {
    let first = (n / 2).next_multiple_of(crate::conv::LANES_MIN_BATCH).min(n);
    (n >= HALVES_FROM && first < n).then_some(first)
}

/// Smallest batch that [`batch_halves`] cuts in two, and that
/// [`sums_in_halves`] sums in two halves.
pub const HALVES_FROM: usize = 16;

/// Does a per-map gradient summed over a batch of `batch` images (the
/// subsampling coefficients') run as two fixed halves side by side? With the
/// parallel kernels, from [`HALVES_FROM`] images on: the halves' sums are added
/// in order, so the result does not depend on the thread count. (Serial, these
/// sums were 5% of a batch-256 step with the other core idle.)
pub fn sums_in_halves(algo: Algo, batch: usize) -> bool {
    algo == Algo::Parallel && batch >= HALVES_FROM
}

/// Into how many tasks the parallel variants split a GEMM's work (samples, output
/// units, or the images whose weight gradients are summed): a fixed number, never
/// the thread count. A GEMM's summation order can depend on its shape (`gemm.rs`
/// picks its form and tiles by shape), so blocks sized by the thread count would make
/// results depend on it; with a fixed split the parallel variants are bit-identical
/// on any number of threads. Two halves keep every GEMM as large as possible on the
/// 2-core machines this is tuned for (finer fixed blocks measured up to 2x slower:
/// C3's weight gradient in blocks of 3 maps, C5 in blocks of 8 samples). Per-image
/// work (convolution forward and input gradient) is split by image and uses every
/// thread.
pub const GEMM_SPLIT: usize = 2;

/// Rows per task when `rows` rows are split into [`GEMM_SPLIT`] tasks.
pub fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(GEMM_SPLIT).max(1)
}

/// Runs a per-image kernel over a batch: `f(images, out)` computes the outputs of
/// the images in `images` into `out` (their `out_per_image` values each). With
/// [`Algo::Parallel`] and enough work, the batch is cut into one task of whole
/// images per thread; otherwise `f` sees the whole batch at once. Images are
/// independent, so the results are the same for every split.
///
/// Element-wise layers (activations, pooling, subsampling) split their work
/// through it.
///
/// ```
/// use tensor_ops::{over_images, Algo};
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut y = [0.0f32; 6];
/// // 3 images of 2 values: y = 2x
/// over_images(Algo::Parallel, 3, &mut y, 2, |images, out| {
///     let x = &x[images.start * 2..images.end * 2];
///     out.iter_mut().zip(x).for_each(|(o, &v)| *o = 2.0 * v);
/// });
/// assert_eq!(y, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
/// ```
pub fn over_images<F>(algo: Algo, batch: usize, out: &mut [f32], out_per_image: usize, f: F)
where
    F: Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
{
    use rayon::prelude::*;
    assert_eq!(out.len(), batch * out_per_image, "over_images: output length");
    // below this many values a task costs more to hand out than to compute
    const MIN_PER_TASK: usize = 4096;
    let parallel = algo == Algo::Parallel && threads() > 1 && out.len() >= 2 * MIN_PER_TASK;
    if !parallel || out_per_image == 0 {
        f(0..batch, out);
        return;
    }
    let per_task = per_thread(batch, MIN_PER_TASK.div_ceil(out_per_image));
    out.par_chunks_mut(per_task * out_per_image)
        .enumerate()
        .for_each(|(t, chunk)| {
            let first = t * per_task;
            f(first..first + chunk.len() / out_per_image, chunk)
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_gives_every_piece_the_same_range_of_each_tensor() {
        let len = 3 * ELEMENTWISE_MIN_PIECE + 5;
        let read: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build();
        let pool = pool.unwrap_or_else(|e| panic!("a pool of 3 threads: {e}"));
        pool.install(|| {
            assert!(elementwise_piece(len) < len, "the test must split");
            let (mut doubled, mut calls) = (vec![0.0f32; len], vec![0.0f32; len]);
            elementwise([&mut doubled, &mut calls], [&read], |[d, c], [r]| {
                for ((d, c), &r) in d.iter_mut().zip(c.iter_mut()).zip(r) {
                    *d = 2.0 * r;
                    *c += 1.0;
                }
            });
            assert!(doubled.iter().zip(&read).all(|(&d, &r)| d == 2.0 * r));
            assert!(calls.iter().all(|&c| c == 1.0));
        });
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn elementwise_refuses_tensors_of_other_lengths() {
        elementwise([&mut [0.0f32; 3]], [&[0.0f32; 2]], |_, _| ());
    }
}
