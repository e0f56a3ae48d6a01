//! The paper's training-set distortions, drawn afresh for every image in every
//! epoch: random planar affine maps (translation, scaling, squeezing, horizontal
//! shearing), and optionally Simard et al.'s (2003) elastic distortion on top.
//!
//! Images are resampled bilinearly on the network's input canvas; what falls
//! outside is background. Each image's random draw depends only on
//! `(seed, epoch, image index)`, so batches can be formed in any order, and a
//! resumed run distorts exactly as an uninterrupted one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which distortion, and how strong (1.0 = the default ranges, 0.0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "train", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "train", serde(rename_all = "lowercase", tag = "kind"))]
pub enum Distortion {
    /// The image as it is.
    #[default]
    None,
    /// Random affine map; ranges at strength 1: translation +-2 px, scale 0.85-1.15,
    /// squeeze (x/y aspect) 0.85-1.15, horizontal shear +-0.3.
    Affine {
        /// Factor on the ranges (0 to 4).
        strength: f32,
    },
    /// The affine map, then an elastic displacement field (uniform noise smoothed
    /// by a Gaussian of sigma 4 px, scaled by alpha = 34 px at strength 1).
    Elastic {
        /// Factor on the affine ranges and on alpha (0 to 4).
        strength: f32,
    },
}

impl std::str::FromStr for Distortion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Distortion::None),
            "affine" => Ok(Distortion::Affine { strength: 1.0 }),
            "elastic" => Ok(Distortion::Elastic { strength: 1.0 }),
            _ => Err(format!("unknown distortion {s:?} (none, affine, elastic)")),
        }
    }
}

impl Distortion {
    /// Distorts each `size x size` image of `images` in place; `indices` are the
    /// images' dataset indices (for their seeds) and `background` the fill value.
    pub fn apply(
        &self,
        images: &mut [f32],
        size: usize,
        background: f32,
        indices: &[usize],
        epoch: usize,
        seed: u64,
    ) {
        let strength = match *self {
            Distortion::None => return,
            Distortion::Affine { strength } | Distortion::Elastic { strength } => strength,
        };
        // the source image inside a border of background (written once: each
        // image overwrites only the inside), so that sampling needs no bounds tests
        let mut src = Bordered::new(size, background);
        let mut field = Field::default();
        for (img, &index) in images.chunks_exact_mut(size * size).zip(indices) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5DEE_CE66_D1CE_5EED);
            rng.set_stream(((epoch as u64) << 32) ^ index as u64);
            let map = Affine::random(&mut rng, strength, size);
            let elastic =
                matches!(self, Distortion::Elastic { .. }).then(|| field.draw(&mut rng, size, strength));
            src.copy_from(img);
            for r in 0..size {
                for c in 0..size {
                    let (mut x, mut y) = map.apply(c as f32, r as f32);
                    if let Some((dx, dy)) = &elastic {
                        x += dx[r * size + c];
                        y += dy[r * size + c];
                    }
                    img[r * size + c] = src.bilinear(x, y);
                }
            }
        }
    }
}

/// Inverse map from output pixel to source position, about the canvas centre.
struct Affine {
    m: [f32; 4],
    t: [f32; 2],
    centre: f32,
}

impl Affine {
    fn random(rng: &mut impl Rng, strength: f32, size: usize) -> Self {
        let mut u = |range: f32| rng.random_range(-1.0f32..=1.0) * range * strength;
        let (tx, ty) = (u(2.0), u(2.0));
        let scale = 1.0 + u(0.15);
        let squeeze = 1.0 + u(0.15);
        let shear = u(0.3);
        // source = A^-1 (out - centre - t) + centre, with A = [[sx, shear*sy], [0, sy]]
        let (sx, sy) = (scale * squeeze, scale / squeeze);
        let det = sx * sy;
        let inv = [sy / det, -shear * sy / det, 0.0, sx / det];
        Affine {
            m: inv,
            t: [tx, ty],
            centre: (size as f32 - 1.0) / 2.0,
        }
    }

    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let (u, v) = (x - self.centre - self.t[0], y - self.centre - self.t[1]);
        (
            self.m[0] * u + self.m[1] * v + self.centre,
            self.m[2] * u + self.m[3] * v + self.centre,
        )
    }
}

/// Scratch for elastic displacement fields.
#[derive(Default)]
struct Field {
    tmp: Vec<f32>,
    kernel: Vec<f32>,
}

impl Field {
    const SIGMA: f32 = 4.0;
    const ALPHA: f32 = 34.0;

    /// Two smoothed random fields `(dx, dy)`, `size x size` each.
    fn draw(&mut self, rng: &mut impl Rng, size: usize, strength: f32) -> (Vec<f32>, Vec<f32>) {
        if self.kernel.is_empty() {
            let radius = (3.0 * Self::SIGMA).ceil() as i32;
            let k: Vec<f32> = (-radius..=radius)
                .map(|i| (-(i * i) as f32 / (2.0 * Self::SIGMA * Self::SIGMA)).exp())
                .collect();
            let sum: f32 = k.iter().sum();
            self.kernel = k.iter().map(|v| v / sum).collect();
        }
        let mut one = || {
            let mut f: Vec<f32> = (0..size * size)
                .map(|_| rng.random_range(-1.0f32..=1.0))
                .collect();
            self.smooth(&mut f, size);
            f.iter_mut().for_each(|v| *v *= Self::ALPHA * strength);
            f
        };
        (one(), one())
    }

    /// Separable Gaussian blur with zero padding: along rows, then along columns.
    ///
    /// Both passes run as [`Field::columns`] (the row pass on the transposed
    /// field), which blurs a whole row of values at a time: each output still
    /// adds its taps in order, skipping those outside the image, but the sums of
    /// a row are independent and fill the vector lanes (one output at a time, the
    /// chain of dependent additions made the blur 40% of an elastic epoch).
    fn smooth(&mut self, f: &mut [f32], size: usize) {
        self.tmp.resize(size * size, 0.0);
        transpose(f, &mut self.tmp, size);
        self.columns(&self.tmp, f, size);
        transpose(f, &mut self.tmp, size);
        self.columns(&self.tmp, f, size);
    }

    /// `dst[row, c] = sum_k kernel[k] * src[row + k - r, c]` over the rows inside
    /// the image, in order of `k` (`r`: the kernel's radius).
    fn columns(&self, src: &[f32], dst: &mut [f32], size: usize) {
        let r = self.kernel.len() / 2;
        for (row, out) in dst.chunks_exact_mut(size).enumerate() {
            out.fill(0.0);
            // taps k reading rows row + k - r in 0..size
            let (lo, hi) = (r.saturating_sub(row), (size + r - row).min(self.kernel.len()));
            for (k, &w) in self.kernel.iter().enumerate().take(hi).skip(lo) {
                let src_row = &src[(row + k - r) * size..][..size];
                for (o, &v) in out.iter_mut().zip(src_row) {
                    *o += w * v;
                }
            }
        }
    }
}

/// `dst[c, r] = src[r, c]` for `size x size` row-major matrices.
fn transpose(src: &[f32], dst: &mut [f32], size: usize) {
    for (r, row) in src.chunks_exact(size).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * size + r] = v;
        }
    }
}

/// A `size x size` image inside a border of [`Bordered::MARGIN`] background pixels.
struct Bordered {
    size: usize,
    /// `(size + 2 MARGIN)^2` values, row-major.
    canvas: Vec<f32>,
}

impl Bordered {
    /// Enough for the two rows (columns) a bilinear sample reads to be both
    /// background whenever its top-left neighbour lies outside the image.
    const MARGIN: usize = 2;

    fn new(size: usize, background: f32) -> Self {
        let side = size + 2 * Self::MARGIN;
        Bordered {
            size,
            canvas: vec![background; side * side],
        }
    }

    fn side(&self) -> usize {
        self.size + 2 * Self::MARGIN
    }

    /// Puts `img` inside the border.
    fn copy_from(&mut self, img: &[f32]) {
        let (side, m) = (self.side(), Self::MARGIN);
        for (dst, src) in self.canvas[m * side..]
            .chunks_mut(side)
            .zip(img.chunks_exact(self.size))
        {
            dst[m..m + self.size].copy_from_slice(src);
        }
    }

    /// Bilinear sample at `(x, y)` (image coordinates), background outside the
    /// image. A neighbour outside the image reads the border; positions further
    /// out are moved onto the border, where all four neighbours are background
    /// too, so the sample is what bounds tests on each neighbour would give.
    fn bilinear(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (side, m) = (self.side(), Self::MARGIN as f32);
        let last = (side - 2) as f32;
        let (r, c) = (
            (y0 + m).clamp(0.0, last) as usize,
            (x0 + m).clamp(0.0, last) as usize,
        );
        let at = |r: usize, c: usize| self.canvas[r * side + c];
        let top = at(r, c) * (1.0 - fx) + at(r, c + 1) * fx;
        let bottom = at(r + 1, c) * (1.0 - fx) + at(r + 1, c + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<f32> {
        (0..32 * 32)
            .map(|i| {
                if (i / 32 + i % 32) % 5 == 0 && i % 32 > 4 && i % 32 < 28 {
                    1.175
                } else {
                    -0.1
                }
            })
            .collect()
    }

    /// The definition of a bilinear sample: a bounds test on each neighbour.
    fn bilinear_by_definition(img: &[f32], size: usize, x: f32, y: f32, background: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let at = |r: f32, c: f32| {
            if r < 0.0 || c < 0.0 || r >= size as f32 || c >= size as f32 {
                background
            } else {
                img[r as usize * size + c as usize]
            }
        };
        let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
        let bottom = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    #[test]
    fn bordered_samples_are_those_of_the_definition_bit_for_bit() {
        let size = 32;
        let img: Vec<f32> = (0..size * size).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut bordered = Bordered::new(size, -0.1);
        bordered.copy_from(&img);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // random positions inside, around and far outside the image, and every
        // half-integer position near its edges
        let random =
            (0..200_000).map(|_| (rng.random_range(-60.0f32..90.0), rng.random_range(-60.0f32..90.0)));
        let grid = (-12..(2 * size as i32 + 12))
            .flat_map(|i| (-12..(2 * size as i32 + 12)).map(move |j| (i as f32 / 2.0, j as f32 / 2.0)));
        for (x, y) in random.chain(grid) {
            let want = bilinear_by_definition(&img, size, x, y, -0.1);
            assert_eq!(bordered.bilinear(x, y).to_bits(), want.to_bits(), "at ({x}, {y})");
        }
    }

    #[test]
    fn the_blur_is_the_separable_definition_bit_for_bit() {
        for size in [1, 5, 28, 32] {
            let mut field = Field::default();
            let mut rng = ChaCha8Rng::seed_from_u64(size as u64);
            field.draw(&mut rng, size, 1.0); // builds the kernel
            let f: Vec<f32> = (0..size * size)
                .map(|_| rng.random_range(-1.0f32..=1.0))
                .collect();
            // rows, then columns; each output adds its taps in order, skipping the
            // ones outside the image
            let r = (field.kernel.len() / 2) as isize;
            let pass = |src: &[f32], along_rows: bool| -> Vec<f32> {
                let mut out = vec![0.0f32; size * size];
                for row in 0..size as isize {
                    for col in 0..size as isize {
                        let mut acc = 0.0;
                        for (k, &w) in field.kernel.iter().enumerate() {
                            let o = k as isize - r;
                            let (rr, cc) = if along_rows {
                                (row, col + o)
                            } else {
                                (row + o, col)
                            };
                            if (0..size as isize).contains(&rr) && (0..size as isize).contains(&cc) {
                                acc += w * src[rr as usize * size + cc as usize];
                            }
                        }
                        out[row as usize * size + col as usize] = acc;
                    }
                }
                out
            };
            let want = pass(&pass(&f, true), false);
            let mut got = f.clone();
            field.smooth(&mut got, size);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "size {size}");
        }
    }

    #[test]
    fn zero_strength_is_the_identity() {
        for d in [
            Distortion::Affine { strength: 0.0 },
            Distortion::Elastic { strength: 0.0 },
            Distortion::None,
        ] {
            let mut img = digit();
            d.apply(&mut img, 32, -0.1, &[7], 3, 42);
            assert_eq!(img, digit(), "{d:?}");
        }
    }

    #[test]
    fn distortions_are_seeded_per_image_and_epoch() {
        let d = Distortion::Elastic { strength: 1.0 };
        let run = |index, epoch, seed| {
            let mut img = digit();
            d.apply(&mut img, 32, -0.1, &[index], epoch, seed);
            img
        };
        assert_eq!(run(3, 1, 9), run(3, 1, 9));
        assert_ne!(run(3, 1, 9), run(3, 2, 9));
        assert_ne!(run(3, 1, 9), run(4, 1, 9));
        assert_ne!(run(3, 1, 9), digit());
        // values stay within the input range (bilinear interpolation is convex)
        assert!(run(3, 1, 9)
            .iter()
            .all(|&v| (-0.1 - 1e-6..=1.175 + 1e-6).contains(&v)));
        // batches can be formed in any order
        let mut pair = [digit(), digit()].concat();
        d.apply(&mut pair, 32, -0.1, &[4, 3], 1, 9);
        assert_eq!(&pair[1024..], &run(3, 1, 9)[..]);
    }
}
