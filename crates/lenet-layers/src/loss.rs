//! Losses on the network's output `[batch, classes]`, averaged over the batch.
//!
//! - [`Loss::Map`]: the paper's maximum a posteriori criterion (eq. 9) on RBF penalties,
//!   `E_p = y_D + log(e^-j + sum_i e^-y_i)`;
//! - [`Loss::RbfMse`]: its first term alone, `E_p = y_D` (can collapse);
//! - [`Loss::SoftmaxCrossEntropy`]: on logits, `E_p = -z_D + log sum_i e^z_i`.

use serde::{Deserialize, Serialize};

/// A loss and the rule that turns outputs into a predicted class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Loss {
    /// MAP criterion; `j` keeps the wrong classes' penalties from being pushed up forever.
    Map {
        /// The constant `j` of eq. 9 (the paper leaves it open; 1.0 here by default).
        j: f32,
    },
    /// Penalty of the correct class only, times `scale` (the NumPy original used 1/2).
    RbfMse {
        /// Factor on the penalty.
        scale: f32,
    },
    /// Softmax cross-entropy on logits.
    SoftmaxCrossEntropy,
}

/// Sums over one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Sum over the batch of the per-sample loss.
    pub loss_sum: f64,
    /// Number of misclassified samples.
    pub errors: usize,
    /// Number of samples.
    pub count: usize,
}

impl BatchStats {
    /// Adds another batch's sums.
    pub fn add(&mut self, other: BatchStats) {
        self.loss_sum += other.loss_sum;
        self.errors += other.errors;
        self.count += other.count;
    }
    /// Mean loss per sample.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }
    /// Fraction misclassified.
    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.count.max(1) as f64
    }
}

impl Loss {
    /// Does a smaller output mean a more likely class (RBF penalties)?
    pub fn lower_is_better(self) -> bool {
        !matches!(self, Loss::SoftmaxCrossEntropy)
    }

    /// The predicted class of one output row.
    pub fn predict(self, out: &[f32]) -> usize {
        let better = |a: f32, b: f32| if self.lower_is_better() { a < b } else { a > b };
        (1..out.len()).fold(0, |best, i| if better(out[i], out[best]) { i } else { best })
    }

    /// Per-class probabilities of one output row (the MAP criterion's posterior
    /// `e^-y_i / (e^-j + sum e^-y_k)` for RBF outputs, the softmax for logits).
    pub fn probabilities(self, out: &[f32]) -> Vec<f32> {
        let neg: Vec<f64> = match self {
            Loss::SoftmaxCrossEntropy => out.iter().map(|&z| z as f64).collect(),
            _ => out.iter().map(|&y| -(y as f64)).collect(),
        };
        let extra = match self {
            Loss::Map { j } => Some(-(j as f64)),
            _ => None,
        };
        let m = neg.iter().copied().chain(extra).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = neg.iter().chain(extra.as_ref()).map(|v| (v - m).exp()).sum();
        neg.iter().map(|v| ((v - m).exp() / z) as f32).collect()
    }

    /// Loss sums over the batch and `dout = dE/dout` of the batch-mean loss.
    pub fn forward_backward(self, out: &[f32], labels: &[u8], dout: &mut [f32]) -> BatchStats {
        let classes = out.len() / labels.len().max(1);
        let inv_p = 1.0 / labels.len().max(1) as f64;
        let mut stats = BatchStats {
            count: labels.len(),
            ..Default::default()
        };
        for ((row, d_row), &label) in out
            .chunks_exact(classes)
            .zip(dout.chunks_exact_mut(classes))
            .zip(labels)
        {
            let d = label as usize;
            stats.errors += usize::from(self.predict(row) != d);
            match self {
                Loss::RbfMse { scale } => {
                    stats.loss_sum += scale as f64 * row[d] as f64;
                    d_row.fill(0.0);
                    d_row[d] = (scale as f64 * inv_p) as f32;
                }
                Loss::Map { j } => {
                    // log(e^-j + sum e^-y_i), computed around the smallest exponent
                    let m = row.iter().fold(j, |m, &y| m.min(y)) as f64;
                    let z =
                        (-(j as f64 - m)).exp() + row.iter().map(|&y| (-(y as f64 - m)).exp()).sum::<f64>();
                    stats.loss_sum += row[d] as f64 + z.ln() - m;
                    for (i, (g, &y)) in d_row.iter_mut().zip(row).enumerate() {
                        let post = (-(y as f64 - m)).exp() / z;
                        *g = ((f64::from(u8::from(i == d)) - post) * inv_p) as f32;
                    }
                }
                Loss::SoftmaxCrossEntropy => {
                    let m = row.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z)) as f64;
                    let z = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>();
                    stats.loss_sum += z.ln() + m - row[d] as f64;
                    for (i, (g, &v)) in d_row.iter_mut().zip(row).enumerate() {
                        let p = (v as f64 - m).exp() / z;
                        *g = ((p - f64::from(u8::from(i == d))) * inv_p) as f32;
                    }
                }
            }
        }
        stats
    }

    /// Diagonal second derivatives `d2E/dout2` of the batch-mean loss, as the
    /// second-derivative pass expects them. For RBF outputs this is the weight of
    /// each penalty in the error (the paper takes the RBF curvature directly, see
    /// [`crate::rbf::Rbf`]): 1 for the correct class, 0 for the others (the MAP term's
    /// competitive part has no positive curvature to add). For softmax: `p (1 - p)`.
    pub fn second(self, out: &[f32], labels: &[u8], d2out: &mut [f32]) {
        let classes = out.len() / labels.len().max(1);
        let inv_p = 1.0 / labels.len().max(1) as f32;
        for ((row, d_row), &label) in out
            .chunks_exact(classes)
            .zip(d2out.chunks_exact_mut(classes))
            .zip(labels)
        {
            match self {
                Loss::Map { .. } | Loss::RbfMse { .. } => {
                    let scale = if let Loss::RbfMse { scale } = self {
                        scale
                    } else {
                        1.0
                    };
                    d_row.fill(0.0);
                    d_row[label as usize] = scale * inv_p;
                }
                Loss::SoftmaxCrossEntropy => {
                    for (g, p) in d_row.iter_mut().zip(Loss::SoftmaxCrossEntropy.probabilities(row)) {
                        *g = p * (1.0 - p) * inv_p;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(loss: Loss, out: &[f32], labels: &[u8]) -> Vec<f64> {
        let e = 1e-3f32;
        (0..out.len())
            .map(|k| {
                let mut p = out.to_vec();
                let mut d = vec![0.0; out.len()];
                p[k] += e;
                let up = loss.forward_backward(&p, labels, &mut d).loss_sum;
                p[k] -= 2.0 * e;
                let down = loss.forward_backward(&p, labels, &mut d).loss_sum;
                (up - down) / (2.0 * e as f64) / labels.len() as f64
            })
            .collect()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let out: Vec<f32> = (0..20).map(|i| ((i * 7) % 11) as f32 * 0.9 + 0.3).collect();
        let labels = [3u8, 8];
        for loss in [
            Loss::Map { j: 1.0 },
            Loss::RbfMse { scale: 0.5 },
            Loss::SoftmaxCrossEntropy,
        ] {
            let mut d = vec![0.0; 20];
            loss.forward_backward(&out, &labels, &mut d);
            for (k, n) in numeric_grad(loss, &out, &labels).iter().enumerate() {
                assert!((n - d[k] as f64).abs() < 1e-4, "{loss:?} [{k}]: {n} vs {}", d[k]);
            }
        }
    }

    #[test]
    fn predictions_and_probabilities() {
        let penalties = [5.0, 1.0, 3.0];
        assert_eq!(Loss::Map { j: 1.0 }.predict(&penalties), 1);
        assert_eq!(Loss::SoftmaxCrossEntropy.predict(&penalties), 0);
        let p = Loss::SoftmaxCrossEntropy.probabilities(&penalties);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let q = Loss::Map { j: 1.0 }.probabilities(&penalties);
        assert!(q.iter().sum::<f32>() < 1.0, "the e^-j term takes some mass");
        assert!(q[1] > q[2] && q[2] > q[0]);
    }
}
