//! The model file: safetensors, `f32`, one tensor per parameter under its layer's
//! name (`c1.weight`, `s2.coeff`, ..., `output.centers`), and the model's
//! configuration as JSON in the metadata (`config`), with the preset under `preset`.
//! NumPy (`safetensors.numpy.load_file`) and PyTorch open it directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::model::{LeNet5, CLASSES, INPUT_LEN, INPUT_SIZE};
use crate::param::Param;
use crate::ModelError;

/// Largest model file accepted (a LeNet-5 is about 250 kB).
pub const MAX_MODEL_FILE_BYTES: u64 = 64 << 20;
/// Metadata key of the format marker.
pub const FORMAT_KEY: &str = "format";
/// Value of the format marker.
pub const FORMAT: &str = "lenet5-rs model v1";

/// Metadata key under which a training program may record how the model was
/// trained (the `lenet` command writes its run's settings there as JSON).
pub const TRAINING_KEY: &str = "training";

/// The model file's bytes. The same model always gives the same bytes.
pub fn to_bytes(model: &LeNet5) -> Result<Vec<u8>, ModelError> {
    to_bytes_with(model, None)
}

/// [`to_bytes`] with `training` (how the model was trained, free text or JSON)
/// recorded in the metadata under [`TRAINING_KEY`].
pub fn to_bytes_with(model: &LeNet5, training: Option<&str>) -> Result<Vec<u8>, ModelError> {
    let format_err = |msg: String| ModelError::Format {
        path: PathBuf::new(),
        msg,
    };
    let data: Vec<(&Param, Vec<u8>)> = model
        .tensors()
        .map(|p| (p, p.value.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::with_capacity(data.len());
    for (p, bytes) in &data {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, p.shape.clone(), bytes)
            .map_err(|e| format_err(e.to_string()))?;
        views.push((p.name.clone(), view));
    }
    let config = serde_json::to_string(model.config())
        .map_err(|e| format_err(format!("cannot serialise the configuration: {e}")))?;
    let mut metadata = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        ("preset".to_string(), model.config().preset.clone()),
        ("config".to_string(), config),
        (
            "trainable_params".to_string(),
            model.trainable_params().to_string(),
        ),
    ]);
    if let Some(training) = training {
        metadata.insert(TRAINING_KEY.to_string(), training.to_string());
    }
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| format_err(e.to_string()))?;
    canonical_header(&bytes).ok_or_else(|| format_err("cannot re-encode the header".into()))
}

/// Rewrites the JSON header with its keys sorted (the crate writes the metadata
/// map in hash order), so the same model always gives the same bytes. Data offsets
/// are relative to the end of the header, so the data block is kept as it is.
fn canonical_header(bytes: &[u8]) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + n)?).ok()?;
    let mut text = serde_json::to_vec(&sorted(header)).ok()?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Some(out)
}

/// The same JSON value with every object's keys in sorted order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        other => other,
    }
}

/// Writes the model file atomically (temporary file in the same directory, then rename).
pub fn save(model: &LeNet5, path: &Path) -> Result<(), ModelError> {
    save_with(model, path, None)
}

/// [`save`] with how the model was trained in its metadata ([`to_bytes_with`]).
pub fn save_with(model: &LeNet5, path: &Path, training: Option<&str>) -> Result<(), ModelError> {
    Ok(lenet_fs::write_atomic(path, &to_bytes_with(model, training)?)?)
}

/// Reads a model file.
pub fn load(path: &Path) -> Result<LeNet5, ModelError> {
    let bytes = lenet_fs::read_capped(path, MAX_MODEL_FILE_BYTES)?;
    from_bytes(&bytes, path)
}

/// Parses a model file's bytes; `path` only names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<LeNet5, ModelError> {
    let format = |msg: String| ModelError::Format {
        path: path.into(),
        msg,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let metadata_err = |msg: &str| ModelError::Metadata {
        path: path.into(),
        msg: msg.into(),
    };
    let config_json = meta
        .get("config")
        .ok_or_else(|| metadata_err("no `config` entry (not a lenet5-rs model file?)"))?;
    let config: ModelConfig =
        serde_json::from_str(config_json).map_err(|e| metadata_err(&format!("config is not valid: {e}")))?;
    let mut model = LeNet5::uninit(config)?;

    let expected: Vec<String> = model.tensors().map(|p| p.name.clone()).collect();
    if let Some(extra) = st.names().into_iter().find(|n| !expected.iter().any(|e| e == n)) {
        return Err(ModelError::UnexpectedTensor {
            path: path.into(),
            name: extra.to_string(),
            preset: model.config().preset.clone(),
        });
    }
    let mut result = Ok(());
    model.visit_tensors_mut(|param| {
        if result.is_err() {
            return;
        }
        result = read_tensor(&st, &param.name, &param.shape, path).and_then(|values| {
            if let Some(mask) = &param.mask {
                if values.iter().zip(mask).any(|(v, m)| *m == 0.0 && *v != 0.0) {
                    return Err(ModelError::BadValues {
                        path: path.into(),
                        name: param.name.clone(),
                        what: "is nonzero where the connection table has no connection".into(),
                    });
                }
            }
            if values.iter().any(|v| v.abs() > MAX_PARAM_MAGNITUDE) {
                return Err(ModelError::BadValues {
                    path: path.into(),
                    name: param.name.clone(),
                    what: format!(
                        "holds values beyond +-{MAX_PARAM_MAGNITUDE:e}, which no trained LeNet-5 has"
                    ),
                });
            }
            // (the shape was checked: as many values as the parameter has)
            param.value.copy_from_slice(&values);
            Ok(())
        });
    });
    result?;
    probe(&mut model, path)?;
    Ok(model)
}

/// Largest parameter magnitude a model file may hold (trained LeNet-5 weights are
/// of order 1; this leaves room for any real model and none for 3e38).
pub const MAX_PARAM_MAGNITUDE: f32 = 1e4;

/// Runs the loaded model on three fixed inputs (blank, all ink, a checkerboard in
/// the paper's input range) and refuses it if any layer's output is not finite,
/// naming the first such layer: a model that answers NaN is refused at load,
/// not at its first prediction.
fn probe(model: &mut LeNet5, path: &Path) -> Result<(), ModelError> {
    let x: Vec<f32> = (0..3 * INPUT_LEN)
        .map(|i| match i / INPUT_LEN {
            0 => -0.1,
            1 => 1.175,
            _ if (i % INPUT_LEN / INPUT_SIZE + i % INPUT_SIZE).is_multiple_of(2) => 1.175,
            _ => -0.1,
        })
        .collect();
    model.forward(&x);
    let bad = model
        .named_activations()
        .into_iter()
        .find(|(_, _, data)| data.iter().any(|v| !v.is_finite()))
        .map(|(name, _, _)| name);
    let probabilities_finite = model.output().chunks_exact(CLASSES).all(|row| {
        model
            .config()
            .loss
            .probabilities(row)
            .iter()
            .all(|p| p.is_finite())
    });
    match bad {
        Some(name) => Err(ModelError::BadValues {
            path: path.into(),
            name,
            what: "is not finite on a test input: the model's weights or settings are out of range".into(),
        }),
        None if !probabilities_finite => Err(ModelError::BadValues {
            path: path.into(),
            name: "output".into(),
            what: "gives non-finite probabilities on a test input".into(),
        }),
        None => Ok(()),
    }
}

/// One tensor as `f32`, checked for name, shape, dtype (F32; F64 is converted) and finiteness.
pub fn read_tensor(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>, ModelError> {
    let view = st.tensor(name).map_err(|_| ModelError::MissingTensor {
        path: path.into(),
        name: name.into(),
    })?;
    if view.shape() != shape {
        return Err(ModelError::Shape {
            path: path.into(),
            name: name.into(),
            expected: shape.to_vec(),
            found: view.shape().to_vec(),
        });
    }
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return Err(ModelError::Dtype {
                path: path.into(),
                name: name.into(),
                found: format!("{other:?}"),
            })
        }
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::BadValues {
            path: path.into(),
            name: name.into(),
            what: "holds NaN or infinity".into(),
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;

    /// The probe names the first layer whose output is not finite.
    #[test]
    fn the_probe_names_the_first_layer_that_is_not_finite() {
        let mut net = LeNet5::new(ModelConfig::classic(), 1).unwrap();
        assert!(probe(&mut net, Path::new("m")).is_ok());
        net.params_mut().next().unwrap().value.fill(f32::MAX);
        let err = probe(&mut net, Path::new("m")).unwrap_err().to_string();
        assert!(err.contains("act.c1.pre is not finite"), "{err}");
    }
}
