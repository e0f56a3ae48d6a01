//! An image of a handwritten digit (PNG or JPEG bytes, any size, either polarity)
//! to the 28x28 MNIST-style bytes the network reads (feature `image`). `lenet
//! predict`, `lenet serve` and the `image` fuzz target all go through
//! [`decode_digit`].

use std::io::Cursor;

/// Largest image side accepted (checked from the header, before decoding).
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Largest image accepted, in pixels (checked from the header, before decoding):
/// 8 megapixels (2896 x 2896). Decoding and preprocessing one such image peaks at
/// about 160 MB; larger photos of a digit should be scaled down first.
pub const MAX_IMAGE_PIXELS: u64 = 8 << 20;

/// Most memory the decoder may allocate for one image (its pixel buffer in the
/// file's own format, e.g. RGBA with 16 bits per channel), in bytes.
pub const MAX_DECODE_BYTES: u64 = 128 << 20;

/// The last bytes of a whole JPEG: the end-of-image marker.
const JPEG_END: [u8; 2] = [0xff, 0xd9];
/// The last bytes of a whole PNG: the empty `IEND` chunk with its CRC.
const PNG_END: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82];

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
    #[error("image is {width}x{height} pixels; the limits are {MAX_IMAGE_SIDE} per side and {MAX_IMAGE_PIXELS} pixels")]
    TooLarge {
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
    },
    /// The file ends before the image does (no JPEG end marker, no PNG `IEND`).
    #[error("the image is truncated: its file ends before the image does")]
    Truncated,
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
    let format = probe.format();
    let (width, height) = probe.into_dimensions()?;
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS
    {
        return Err(DigitError::TooLarge { width, height });
    }
    // some decoders fill in what a cut-off file lacks: refuse the cut first
    // (trailing zero padding, as some writers leave, is not a cut)
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let complete = match format {
        Some(image::ImageFormat::Jpeg) => bytes[..end].ends_with(&JPEG_END),
        Some(image::ImageFormat::Png) => bytes[..end].ends_with(&PNG_END),
        _ => true,
    };
    if !complete {
        return Err(DigitError::Truncated);
    }
    let mut decoder = reader().map_err(image::ImageError::IoError)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
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
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark "1" on white, 60x80, encoded as `format`.
    fn one(format: image::ImageFormat) -> Vec<u8> {
        let img = image::GrayImage::from_fn(60, 80, |x, y| {
            image::Luma([if (27..33).contains(&x) && (10..70).contains(&y) {
                0
            } else {
                255
            }])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn cut_off_files_are_refused_and_whole_ones_decode() {
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let whole = one(format);
            assert!(decode_digit(&whole).is_ok(), "{format:?}");
            for keep in [whole.len() / 3, whole.len() - 2] {
                let err = decode_digit(&whole[..keep]).unwrap_err();
                assert!(
                    matches!(err, DigitError::Truncated | DigitError::Decode(_)),
                    "{format:?} cut at {keep}: {err}"
                );
            }
            // trailing zero padding after a whole JPEG is not a cut
            let mut padded = whole.clone();
            padded.extend([0; 16]);
            assert!(decode_digit(&padded).is_ok(), "{format:?} padded");
        }
    }

    #[test]
    fn more_pixels_than_the_budget_are_refused_from_the_header() {
        // 5000 x 5000 = 25 megapixels: within the side limit, over the pixel budget
        let img = image::GrayImage::new(5000, 5000);
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let err = decode_digit(&png).unwrap_err();
        assert!(
            matches!(
                err,
                DigitError::TooLarge {
                    width: 5000,
                    height: 5000
                }
            ),
            "{err}"
        );
        assert!(matches!(input_from_gray(&img), Err(DigitError::TooLarge { .. })));
    }
}
