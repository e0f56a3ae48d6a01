//! Turning any grayscale picture of a digit into an MNIST-style 28x28 image, the
//! way MNIST itself was made: decide the polarity (MNIST is light ink on black),
//! crop to the ink, scale to fit a 20x20 box keeping the aspect ratio (with
//! area averaging, so strokes stay anti-aliased), then centre the result in 28x28
//! by its centre of mass.

use crate::error::{MnistError, Result};

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// Side of the box the digit is scaled into.
pub const BOX: usize = 20;

/// `gray` is `width x height` bytes, row-major, any polarity. Returns 784 bytes,
/// 0 = background, 255 = ink.
///
/// ```
/// // a dark "1" on white paper, 40x60 pixels
/// let (w, h) = (40, 60);
/// let mut paper = vec![255u8; w * h];
/// for r in 5..55 { for c in 18..23 { paper[r * w + c] = 0; } }
/// let img = mnist_io::preprocess::to_mnist(&paper, w, h).unwrap();
/// assert_eq!(img.len(), 784);
/// assert_eq!(img[0], 0);               // background is black
/// assert!(img[14 * 28 + 14] > 200);    // the stroke is bright, through the centre
/// ```
pub fn to_mnist(gray: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || gray.len() != width * height {
        return Err(MnistError::InvalidArgument(format!(
            "image of {width}x{height} pixels with {} values",
            gray.len()
        )));
    }
    // 1. polarity: the border is background; make background dark.
    let border: Vec<u8> = (0..width)
        .flat_map(|c| [gray[c], gray[(height - 1) * width + c]])
        .chain((0..height).flat_map(|r| [gray[r * width], gray[r * width + width - 1]]))
        .collect();
    let border_mean = border.iter().map(|&v| v as f32).sum::<f32>() / border.len() as f32;
    let invert = border_mean > 127.0;
    let ink: Vec<f32> = gray
        .iter()
        .map(|&v| if invert { 255 - v } else { v } as f32)
        .collect();
    // subtract the background level so paper texture does not count as ink
    let background = if invert { 255.0 - border_mean } else { border_mean };
    let ink: Vec<f32> = ink
        .iter()
        .map(|&v| ((v - background) / (255.0 - background).max(1.0)).clamp(0.0, 1.0))
        .collect();

    // 2. crop to the ink (pixels above a quarter of the strongest)
    let peak = ink.iter().fold(0.0f32, |m, &v| m.max(v));
    if peak < 0.1 {
        return Err(MnistError::InvalidArgument(
            "no digit found: the image has no ink".into(),
        ));
    }
    let threshold = 0.25 * peak;
    let (mut r0, mut r1, mut c0, mut c1) = (height, 0, width, 0);
    for r in 0..height {
        for c in 0..width {
            if ink[r * width + c] > threshold {
                (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c));
            }
        }
    }
    let (ch, cw) = (r1 - r0 + 1, c1 - c0 + 1);

    // 3. scale into the 20x20 box, keeping the aspect ratio (area averaging)
    let scale = BOX as f32 / ch.max(cw) as f32;
    let (oh, ow) = (
        ((ch as f32 * scale).round() as usize).clamp(1, BOX),
        ((cw as f32 * scale).round() as usize).clamp(1, BOX),
    );
    let mut small = vec![0.0f32; oh * ow];
    for (i, v) in small.iter_mut().enumerate() {
        let (r, c) = (i / ow, i % ow);
        // source rectangle of this output pixel
        let (sy0, sy1) = (
            r as f32 * ch as f32 / oh as f32,
            (r + 1) as f32 * ch as f32 / oh as f32,
        );
        let (sx0, sx1) = (
            c as f32 * cw as f32 / ow as f32,
            (c + 1) as f32 * cw as f32 / ow as f32,
        );
        let (mut acc, mut area) = (0.0f32, 0.0f32);
        for sy in sy0.floor() as usize..(sy1.ceil() as usize).min(ch) {
            let wy = (sy1.min(sy as f32 + 1.0) - sy0.max(sy as f32)).max(0.0);
            for sx in sx0.floor() as usize..(sx1.ceil() as usize).min(cw) {
                let wx = (sx1.min(sx as f32 + 1.0) - sx0.max(sx as f32)).max(0.0);
                acc += wx * wy * ink[(r0 + sy) * width + c0 + sx];
                area += wx * wy;
            }
        }
        *v = if area > 0.0 { acc / area } else { 0.0 };
    }
    let peak_small = small.iter().fold(0.0f32, |m, &v| m.max(v)).max(1e-6);

    // 4. centre of mass to the middle of the 28x28 canvas
    let mass: f32 = small.iter().sum::<f32>().max(1e-6);
    let cy = small
        .iter()
        .enumerate()
        .map(|(i, &v)| (i / ow) as f32 * v)
        .sum::<f32>()
        / mass;
    let cx = small
        .iter()
        .enumerate()
        .map(|(i, &v)| (i % ow) as f32 * v)
        .sum::<f32>()
        / mass;
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let (dy, dx) = ((centre - cy).round() as isize, (centre - cx).round() as isize);
    let mut out = vec![0u8; SIDE * SIDE];
    for (i, &v) in small.iter().enumerate() {
        let (r, c) = ((i / ow) as isize + dy, (i % ow) as isize + dx);
        if (0..SIDE as isize).contains(&r) && (0..SIDE as isize).contains(&c) {
            out[r as usize * SIDE + c as usize] = (255.0 * v / peak_small).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_polarities_give_the_same_image() {
        let (w, h) = (50, 70);
        let mut light = vec![240u8; w * h];
        for r in 10..60 {
            for c in 20..26 {
                light[r * w + c] = 10;
            }
        }
        let dark: Vec<u8> = light.iter().map(|&v| 255 - v).collect();
        let a = to_mnist(&light, w, h).unwrap();
        let b = to_mnist(&dark, w, h).unwrap();
        assert_eq!(a, b);
        // tall stroke: 20 rows high, centred
        let rows_with_ink = (0..28).filter(|r| (0..28).any(|c| a[r * 28 + c] > 128)).count();
        assert_eq!(rows_with_ink, 20);
    }

    #[test]
    fn an_mnist_digit_survives_a_round_trip_roughly() {
        // a blob already in MNIST format stays where it is
        let mut img = vec![0u8; 784];
        for r in 4..24 {
            for c in 10..18 {
                img[r * 28 + c] = 255;
            }
        }
        let out = to_mnist(&img, 28, 28).unwrap();
        let diff = img
            .iter()
            .zip(&out)
            .filter(|(a, b)| a.abs_diff(**b) > 128)
            .count();
        assert!(diff < 30, "{diff} pixels moved");
    }

    #[test]
    fn blank_and_malformed_images_are_errors() {
        assert!(to_mnist(&[255; 100], 10, 10).is_err());
        assert!(to_mnist(&[0; 10], 5, 5).is_err());
        assert!(to_mnist(&[], 0, 0).is_err());
        // one ink pixel is enough
        let mut dot = vec![0u8; 100];
        dot[55] = 255;
        assert!(to_mnist(&dot, 10, 10).is_ok());
    }
}
