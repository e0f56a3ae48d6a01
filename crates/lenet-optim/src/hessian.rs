//! SDLM's estimate of the diagonal second derivatives `h_kk`: the Gauss-Newton
//! second-derivative pass ([`LeNet5::backward_second`]) averaged over a few hundred
//! training patterns, then held fixed for an epoch.

use lenet_layers::{LeNet5, INPUT_LEN};

use crate::data::{DataError, TrainData};

/// Mean of the per-pattern diagonal Gauss-Newton `d2E/dw2` over `indices`, one
/// vector per parameter tensor. Patterns go through in chunks of `chunk`; fails
/// only if the data cannot fill a chunk.
pub fn estimate(
    model: &mut LeNet5,
    data: &dyn TrainData,
    indices: &[usize],
    epoch: usize,
    chunk: usize,
) -> Result<Vec<Vec<f32>>, DataError> {
    let mut sum: Vec<Vec<f64>> = model.params().map(|p| vec![0.0; p.len()]).collect();
    let chunk = chunk.max(1);
    let mut x = vec![0.0; chunk * INPUT_LEN];
    let mut labels = vec![0u8; chunk];
    for part in indices.chunks(chunk) {
        let n = part.len();
        data.fill(part, epoch, &mut x[..n * INPUT_LEN], &mut labels[..n])?;
        model.forward(&x[..n * INPUT_LEN]);
        model.backward_second(&labels[..n]);
        // param.hess is the mean over this chunk; weight it by the chunk's size
        for (acc, p) in sum.iter_mut().zip(model.params()) {
            tensor_ops::update::accumulate_f64(acc, &p.hess, n as f64);
        }
    }
    let total = indices.len().max(1) as f64;
    Ok(sum
        .into_iter()
        .map(|v| v.into_iter().map(|a| (a / total) as f32).collect())
        .collect())
}
