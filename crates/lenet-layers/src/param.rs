//! A trainable tensor with its gradient and its second-derivative estimate.

use tensor_ops::AlignedVec;

/// One parameter tensor of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Full name as in the model file, e.g. `c3.weight`.
    pub name: String,
    /// Shape, e.g. `[16, 6, 5, 5]`.
    pub shape: Vec<usize>,
    /// Current values (from a 64-byte boundary, as `grad` and `hess`: the
    /// kernels' vector loads never span two cache lines, [`AlignedVec`]).
    pub value: AlignedVec,
    /// `dE/dw` of the last [`crate::LeNet5::backward`] (mean over its batch).
    pub grad: AlignedVec,
    /// Diagonal Gauss-Newton `d2E/dw2` of the last second-derivative pass.
    pub hess: AlignedVec,
    /// `1.0` where the value is a real parameter, `0.0` where it is a structural
    /// zero (C3's unconnected pairs); `None` when every value is a parameter.
    pub mask: Option<Vec<f32>>,
}

impl Param {
    /// A zero tensor of this shape.
    pub fn zeros(name: impl Into<String>, shape: &[usize]) -> Self {
        let n = shape.iter().product();
        Param {
            name: name.into(),
            shape: shape.to_vec(),
            value: AlignedVec::zeros(n),
            grad: AlignedVec::zeros(n),
            hess: AlignedVec::zeros(n),
            mask: None,
        }
    }

    /// Number of trainable values (masked-out entries do not count).
    pub fn trainable(&self) -> usize {
        self.mask
            .as_ref()
            .map_or(self.value.len(), |m| m.iter().filter(|&&v| v != 0.0).count())
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True when the tensor has no values.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// What the tensor is, by its name's last part (`.bias`, `.coeff`, else a weight).
    ///
    /// ```
    /// use lenet_layers::{Param, ParamRole};
    /// assert_eq!(Param::zeros("s2.coeff", &[6]).role(), ParamRole::Coeff);
    /// assert_eq!(Param::zeros("c3.weight", &[16, 6, 5, 5]).role(), ParamRole::Weight);
    /// ```
    pub fn role(&self) -> ParamRole {
        match self.name.rsplit('.').next() {
            Some("bias") => ParamRole::Bias,
            Some("coeff") => ParamRole::Coeff,
            _ => ParamRole::Weight,
        }
    }
}

/// The part a parameter tensor plays in its layer (some init rules treat them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// Connection weights.
    Weight,
    /// Per-unit biases.
    Bias,
    /// Subsampling coefficients: one multiplier per map.
    Coeff,
}

/// The weight and bias tensors of a layer that has those two (`params`: `[weight,
/// bias]`), values and gradients, for a pass that steps them.
pub(crate) fn weight_and_bias(params: &mut [Param]) -> tensor_ops::update::WeightBias<'_> {
    let [w, b] = params else {
        panic!("a weight and a bias tensor expected, got {}", params.len());
    };
    tensor_ops::update::WeightBias {
        w: &mut w.value,
        b: &mut b.value,
        dw: &mut w.grad,
        db: &mut b.grad,
    }
}

/// The descent step of a layer with a weight and a bias tensor, from their
/// rates (`rates`: `[weight rates, bias rates]`, [`crate::Layer::backward_descend`]).
pub(crate) fn weight_bias_descent(lr: f32, rates: &[AlignedVec]) -> tensor_ops::update::Descent<'_> {
    assert_eq!(rates.len(), 2, "one rate tensor per parameter: weight and bias");
    tensor_ops::update::Descent {
        lr,
        weight_rate: &rates[0],
        bias_rate: &rates[1],
    }
}
