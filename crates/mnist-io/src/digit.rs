//! An image of a handwritten digit (PNG or JPEG bytes, any size, either polarity)
//! to the 28x28 MNIST-style bytes the network reads (feature `image`). `lenet
//! predict`, `lenet serve` and the `image` fuzz target all go through
//! [`decode_digit`].

use std::io::Cursor;

/// Largest image side accepted (checked from the header, before decoding).
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Largest image file a caller should read into memory for [`decode_digit`]
/// (an 8192 x 8192 RGBA PNG stored uncompressed is 256 MiB).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Why an image could not be read as a digit.
#[derive(Debug, thiserror::Error)]
pub enum DigitError {
    /// The bytes are neither PNG nor JPEG.
    #[error("not a PNG or JPEG image")]
    UnknownFormat,
    /// The header announces more pixels per side than [`MAX_IMAGE_SIDE`].
    #[error("image is {width}x{height} pixels; the limit is {MAX_IMAGE_SIDE} per side")]
    TooLarge {
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
    },
    /// The decoder failed (damaged or unsupported data).
    #[error("cannot decode the image: {0}")]
    Decode(#[from] image::ImageError),
    /// The decoded picture could not be turned into network input.
    #[error("{0}")]
    Preprocess(#[from] crate::MnistError),
}

/// Decodes `bytes` (PNG or JPEG), checks the size from the header first, converts
/// to grayscale and preprocesses it as MNIST was (polarity, crop, 20x20 box, centre
/// of mass in a 28x28 field): returns 784 bytes, ink bright on black.
///
/// ```
/// let mut png = Vec::new();
/// let img = image::GrayImage::from_fn(40, 40, |x, _| image::Luma([if (18..22).contains(&x) { 0 } else { 255 }]));
/// img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
/// let digit = mnist_io::digit::decode_digit(&png).unwrap();
/// assert_eq!(digit.len(), 28 * 28);
/// assert!(mnist_io::digit::decode_digit(b"not an image").is_err());
/// ```
pub fn decode_digit(bytes: &[u8]) -> Result<Vec<u8>, DigitError> {
    let reader = || image::ImageReader::new(Cursor::new(bytes)).with_guessed_format();
    let probe = reader().map_err(image::ImageError::IoError)?;
    if probe.format().is_none() {
        return Err(DigitError::UnknownFormat);
    }
    let (width, height) = probe.into_dimensions()?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(DigitError::TooLarge { width, height });
    }
    let mut decoder = reader().map_err(image::ImageError::IoError)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    decoder.limits(limits);
    let gray = decoder.decode()?.to_luma8();
    let (w, h) = gray.dimensions();
    digit_from_gray(gray.as_raw(), w as usize, h as usize)
}

/// A PNG or JPEG of a digit as network input `[1, 1, 32, 32]`, in one call:
/// [`decode_digit`], then [`crate::InputSpec::default`]'s padding and scaling.
///
/// ```
/// let mut png = Vec::new();
/// let img = image::GrayImage::from_fn(40, 40, |x, _| image::Luma([if (18..22).contains(&x) { 0 } else { 255 }]));
/// img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
/// let x = mnist_io::digit::input_from_bytes(&png).unwrap();
/// assert_eq!(x.shape(), &[1, 1, 32, 32]);
/// ```
pub fn input_from_bytes(bytes: &[u8]) -> Result<ndarray::Array4<f32>, DigitError> {
    to_input(&decode_digit(bytes)?)
}

/// A decoded grayscale picture of a digit (either polarity, any size up to
/// [`MAX_IMAGE_SIDE`]) as network input `[1, 1, 32, 32]`, preprocessed as
/// MNIST was.
///
/// ```
/// let img = image::GrayImage::from_fn(40, 60, |x, _| image::Luma([if (18..23).contains(&x) { 0 } else { 255 }]));
/// let x = mnist_io::digit::input_from_gray(&img).unwrap();
/// assert_eq!(x.shape(), &[1, 1, 32, 32]);
/// ```
pub fn input_from_gray(img: &image::GrayImage) -> Result<ndarray::Array4<f32>, DigitError> {
    let (w, h) = img.dimensions();
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(DigitError::TooLarge { width: w, height: h });
    }
    to_input(&digit_from_gray(img.as_raw(), w as usize, h as usize)?)
}

fn to_input(digit: &[u8]) -> Result<ndarray::Array4<f32>, DigitError> {
    let view = ndarray::ArrayView2::from_shape((crate::preprocess::SIDE, crate::preprocess::SIDE), digit)
        .map_err(|e| crate::MnistError::InvalidArgument(e.to_string()))?;
    Ok(crate::InputSpec::default().image_array(view)?)
}

/// The preprocessing step of [`decode_digit`] on pixels already decoded: `gray` is
/// `width x height` grayscale bytes, either polarity.
pub fn digit_from_gray(gray: &[u8], width: usize, height: usize) -> Result<Vec<u8>, DigitError> {
    Ok(crate::preprocess::to_mnist(gray, width, height)?)
}
