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
pub enum Distortion {
    #[default]
    None,
    /// Random affine map; ranges at strength 1: translation +-2 px, scale 0.85-1.15,
    /// squeeze (x/y aspect) 0.85-1.15, horizontal shear +-0.3.
    Affine { strength: f32 },
    /// The affine map, then an elastic displacement field (uniform noise smoothed
    /// by a Gaussian of sigma 4 px, scaled by alpha = 34 px at strength 1).
    Elastic { strength: f32 },
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
        let mut src = vec![0.0f32; size * size];
        let mut field = Field::default();
        for (img, &index) in images.chunks_exact_mut(size * size).zip(indices) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5DEE_CE66_D1CE_5EED);
            rng.set_stream(((epoch as u64) << 32) ^ index as u64);
            let map = Affine::random(&mut rng, strength, size);
            let elastic =
                matches!(self, Distortion::Elastic { .. }).then(|| field.draw(&mut rng, size, strength));
            src.copy_from_slice(img);
            for r in 0..size {
                for c in 0..size {
                    let (mut x, mut y) = map.apply(c as f32, r as f32);
                    if let Some((dx, dy)) = &elastic {
                        x += dx[r * size + c];
                        y += dy[r * size + c];
                    }
                    img[r * size + c] = bilinear(&src, size, x, y, background);
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

    /// Separable Gaussian blur with zero padding.
    fn smooth(&mut self, f: &mut [f32], size: usize) {
        let r = (self.kernel.len() / 2) as isize;
        self.tmp.resize(size * size, 0.0);
        for pass in 0..2 {
            let (src, dst): (&[f32], &mut [f32]) = if pass == 0 {
                (f, &mut self.tmp)
            } else {
                (&self.tmp, f)
            };
            for row in 0..size {
                for col in 0..size {
                    let mut acc = 0.0;
                    for (k, &w) in self.kernel.iter().enumerate() {
                        let o = k as isize - r;
                        let (rr, cc) = if pass == 0 {
                            (row as isize, col as isize + o)
                        } else {
                            (row as isize + o, col as isize)
                        };
                        if (0..size as isize).contains(&rr) && (0..size as isize).contains(&cc) {
                            acc += w * src[rr as usize * size + cc as usize];
                        }
                    }
                    dst[row * size + col] = acc;
                }
            }
        }
    }
}

/// Bilinear sample at `(x, y)`, background outside the image.
fn bilinear(img: &[f32], size: usize, x: f32, y: f32, background: f32) -> f32 {
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
