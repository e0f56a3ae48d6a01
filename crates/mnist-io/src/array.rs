//! The `ndarray` front door (feature `ndarray`, on by default): a dataset's images
//! and labels as array views, batches and single pictures as `[N, 1, H, W]` input
//! arrays. The slice functions underneath ([`InputSpec::fill`]) stay for callers
//! that manage their own buffers.

use ndarray::{Array4, ArrayView1, ArrayView2, ArrayView3};

use crate::{Dataset, InputSpec, MnistError, Result};

impl Dataset {
    /// The images as `[len, rows, cols]` bytes (0 = background, 255 = ink), no copy.
    ///
    /// ```
    /// let ds = mnist_io::Dataset::from_parts((0..8).collect(), vec![3, 7], 2, 2)?;
    /// assert_eq!(ds.images().shape(), &[2, 2, 2]);
    /// assert_eq!(ds.images()[[1, 0, 1]], 5);
    /// assert_eq!(ds.labels_array()[1], 7);
    /// # Ok::<(), mnist_io::MnistError>(())
    /// ```
    pub fn images(&self) -> ArrayView3<'_, u8> {
        // from_parts checked that the pixels are len * rows * cols bytes
        ArrayView3::from_shape((self.len(), self.rows(), self.cols()), self.pixels())
            .unwrap_or_else(|_| unreachable!("a Dataset's pixels are len * rows * cols bytes"))
    }

    /// The labels (0..=9), no copy.
    pub fn labels_array(&self) -> ArrayView1<'_, u8> {
        ArrayView1::from(self.labels())
    }
}

impl InputSpec {
    /// Images `indices` of `ds` as network input `[indices.len(), 1, size, size]`.
    ///
    /// ```
    /// use mnist_io::{Dataset, InputSpec};
    /// let ds = Dataset::from_parts(vec![255; 3 * 28 * 28], vec![1, 2, 3], 28, 28)?;
    /// let x = InputSpec::default().batch_array(&ds, &[2, 0])?;
    /// assert_eq!(x.shape(), &[2, 1, 32, 32]);
    /// assert_eq!(x[[0, 0, 2, 2]], 1.175); // ink, inside the 2-pixel border
    /// # Ok::<(), mnist_io::MnistError>(())
    /// ```
    pub fn batch_array(&self, ds: &Dataset, indices: &[usize]) -> Result<Array4<f32>> {
        let x = self.batch(ds, indices)?;
        self.shaped(x, indices.len())
    }

    /// Every image of `ds`, in order, as `[len, 1, size, size]`.
    pub fn all(&self, ds: &Dataset) -> Result<Array4<f32>> {
        let indices: Vec<usize> = (0..ds.len()).collect();
        self.batch_array(ds, &indices)
    }

    /// One picture of `rows x cols` bytes (MNIST-style: ink bright on black, at
    /// most `size` per side) as `[1, 1, size, size]` input, with no dataset.
    ///
    /// ```
    /// let digit = ndarray::Array2::<u8>::zeros((28, 28));
    /// let x = mnist_io::InputSpec::default().image_array(digit.view())?;
    /// assert_eq!(x.shape(), &[1, 1, 32, 32]);
    /// # Ok::<(), mnist_io::MnistError>(())
    /// ```
    pub fn image_array(&self, pixels: ArrayView2<'_, u8>) -> Result<Array4<f32>> {
        let (rows, cols) = pixels.dim();
        let ds = Dataset::from_parts(pixels.iter().copied().collect(), vec![0], rows, cols)?;
        self.batch_array(&ds, &[0])
    }

    fn shaped(&self, x: Vec<f32>, n: usize) -> Result<Array4<f32>> {
        Array4::from_shape_vec((n, 1, self.size, self.size), x)
            .map_err(|e| MnistError::InvalidArgument(format!("batch of {n}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_hold_what_the_slices_hold() {
        let ds = Dataset::from_parts(
            (0..5 * 28 * 28).map(|i| (i % 251) as u8).collect(),
            vec![0, 1, 2, 3, 4],
            28,
            28,
        )
        .unwrap();
        let spec = InputSpec::default();
        let x = spec.batch_array(&ds, &[4, 1]).unwrap();
        assert_eq!(x.as_slice().unwrap(), &spec.batch(&ds, &[4, 1]).unwrap()[..]);
        assert_eq!(spec.all(&ds).unwrap().shape(), &[5, 1, 32, 32]);
        assert_eq!(
            ds.images()
                .slice(ndarray::s![3, .., ..])
                .iter()
                .copied()
                .collect::<Vec<u8>>(),
            ds.image(3)
        );
        let one = spec
            .image_array(ds.images().slice(ndarray::s![4, .., ..]))
            .unwrap();
        assert_eq!(one.as_slice().unwrap(), &spec.batch(&ds, &[4]).unwrap()[..]);
        // a picture larger than the input is refused, not cropped
        assert!(spec.image_array(ndarray::Array2::zeros((40, 40)).view()).is_err());
    }
}
