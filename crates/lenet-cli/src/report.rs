//! Files a run leaves behind: config.json, metrics.csv/json, and small helpers.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use lenet_fs::write_atomic;
use lenet_layers::LeNet5;
use lenet_optim::EpochMetrics;
use mnist_io::RunConfig;
use serde::Serialize;

/// Everything that defines a run, as written to `config.json`: the run's settings
/// and the machine and build it ran on.
#[derive(Serialize)]
pub struct RunRecord<'a> {
    pub crate_version: &'static str,
    /// The instruction set the kernels ran on, and the CPU.
    pub isa: tensor_ops::Isa,
    pub cpu: String,
    pub threads: usize,
    /// The preset and the network settings changed from it, in words.
    pub network: String,
    /// Every persisted setting, the seed among them.
    pub run: &'a RunConfig,
    pub train_images: usize,
    pub trainable_params: usize,
}

impl<'a> RunRecord<'a> {
    pub fn new(run: &'a RunConfig, model: &LeNet5, train_images: usize) -> Self {
        RunRecord {
            crate_version: env!("CARGO_PKG_VERSION"),
            isa: tensor_ops::isa(),
            cpu: crate::Platform::now().cpu,
            threads: rayon::current_num_threads(),
            network: model.config().describe(),
            run,
            train_images,
            trainable_params: model.trainable_params(),
        }
    }
}

/// Pretty JSON, written atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// `metrics.csv` and `metrics.json` (one row / object per epoch).
pub fn write_metrics(out: &Path, history: &[EpochMetrics]) -> Result<()> {
    write_json(&out.join("metrics.json"), &history)?;
    // validation columns last, so the older columns keep their places
    let mut csv = String::from(
        "epoch,train_loss,train_error,test_loss,test_error,seconds,images_per_s,lr,valid_loss,valid_error\n",
    );
    for r in history {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            r.epoch,
            r.train_loss,
            r.train_error,
            opt(r.test_loss),
            opt(r.test_error),
            r.seconds,
            r.images_per_s,
            r.lr,
            opt(r.valid_loss),
            opt(r.valid_error)
        );
    }
    let path = out.join("metrics.csv");
    write_atomic(&path, csv.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// `YYYYmmdd-HHMMSS` (UTC) for default run directories.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_shape() {
        let t = super::timestamp();
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("20"));
    }
}
