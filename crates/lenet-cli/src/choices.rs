//! Every choice flag's parser, typed: a table of the names a flag takes and the
//! library value each one means. clap lists the names in `--help` and refuses any
//! other before the command runs, so no command parses a choice by hand.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use lenet_layers::{Activation, Algo, Output, Pooling, Preset};
use lenet_optim::HessianMode;
use mnist_io::Distortion;

/// The update rule a `--optimizer` names (its settings come from the recipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Stochastic diagonal Levenberg-Marquardt (the paper).
    Sdlm,
    /// SGD with momentum.
    Momentum,
    /// Plain SGD.
    Sgd,
}

/// The library's own names: no second spelling here.
pub const PRESETS: [(&str, Preset); 3] = [
    (Preset::ALL[0].name(), Preset::ALL[0]),
    (Preset::ALL[1].name(), Preset::ALL[1]),
    (Preset::ALL[2].name(), Preset::ALL[2]),
];
pub const POOLINGS: [(&str, Pooling); 4] = [
    ("subsample", Pooling::Subsample),
    ("avg", Pooling::Avg),
    ("max", Pooling::Max),
    ("avg2018", Pooling::Avg2018),
];
pub const OUTPUTS: [(&str, Output); 2] = [("rbf", Output::Rbf), ("softmax", Output::Softmax)];
pub const SWITCH: [(&str, bool); 2] = [("on", true), ("off", false)];
pub const OPTIMIZERS: [(&str, OptimizerKind); 3] = [
    ("sdlm", OptimizerKind::Sdlm),
    ("momentum", OptimizerKind::Momentum),
    ("sgd", OptimizerKind::Sgd),
];
pub const HESSIAN_MODES: [(&str, HessianMode); 2] = [
    ("per-parameter", HessianMode::PerParameter),
    ("tensor-sum", HessianMode::TensorSum),
];
/// Distortions at strength 1; `--distort-strength` sets the strength.
pub const DISTORTIONS: [(&str, Distortion); 3] = [
    ("none", Distortion::None),
    ("affine", Distortion::Affine { strength: 1.0 }),
    ("elastic", Distortion::Elastic { strength: 1.0 }),
];
pub const KERNELS: [(&str, Algo); 3] = [
    (Algo::Naive.name(), Algo::Naive),
    (Algo::Im2col.name(), Algo::Im2col),
    (Algo::Parallel.name(), Algo::Parallel),
];
/// The library's own names and default constants (`Activation::ALL`).
pub const ACTIVATIONS: [(&str, Activation); 6] = [
    (Activation::ALL[0].name(), Activation::ALL[0]),
    (Activation::ALL[1].name(), Activation::ALL[1]),
    (Activation::ALL[2].name(), Activation::ALL[2]),
    (Activation::ALL[3].name(), Activation::ALL[3]),
    (Activation::ALL[4].name(), Activation::ALL[4]),
    (Activation::ALL[5].name(), Activation::ALL[5]),
];

/// A value parser that takes one of `table`'s names and gives its value.
pub fn one_of<T: Clone + Send + Sync + 'static>(
    table: &'static [(&'static str, T)],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(table.iter().map(|(name, _)| *name)).try_map(move |name| {
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("unknown value {name:?}"))
    })
}

/// The name `table` gives `value`, for messages and `--help` texts.
pub fn name_of<T: PartialEq>(table: &'static [(&'static str, T)], value: &T) -> Option<&'static str> {
    table.iter().find(|(_, v)| v == value).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables agree with the libraries' own names, where a library has them.
    #[test]
    fn the_tables_name_what_the_libraries_name() {
        for (name, a) in ACTIVATIONS {
            assert_eq!(name.parse::<Activation>().unwrap(), a);
        }
        for (name, p) in PRESETS {
            assert_eq!(name.parse::<Preset>().unwrap(), p);
        }
        for (name, d) in DISTORTIONS {
            assert_eq!(name.parse::<Distortion>().unwrap(), d);
        }
        assert_eq!(Activation::ALL.len(), ACTIVATIONS.len());
        assert_eq!(Preset::ALL.len(), PRESETS.len());
    }
}
