//! The `lenet` binary's modules, as a library target so that the fuzz targets
//! reach the HTTP router ([`serve::app`]) without a socket. This is not an API
//! for other crates: the library crates (`lenet-layers`, `lenet-optim`,
//! `mnist-io`, `tensor-ops`) are. Items are public for `main.rs` and the fuzzers.
#![allow(missing_docs)]

pub mod choices;
pub mod commands;
pub mod dataset;
pub mod limits;
pub mod plots;
pub mod report;
pub mod rundir;
pub mod serve;
pub mod train;

use anyhow::{Context, Result};

/// Sizes the global thread pool (`None`: one thread per core).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build_global().context("starting the thread pool")
}

/// Runs `work` on one of the pool's threads (after [`set_threads`]). The kernels open a parallel region
/// per layer and pass (about 20 per training step); opened from a thread outside
/// the pool, each one hands its job over and sleeps on a lock until it is done,
/// while from a pool thread the other threads steal the work directly (measured
/// 15% of a batch-32 training step in that hand-over before).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// What `lenet info` prints, and what runs record of the machine that made them.
#[derive(serde::Serialize)]
pub struct Platform {
    /// This build's version of lenet5-rs.
    pub version: &'static str,
    /// The instruction set the kernels use (`LENET_SIMD` or the best supported).
    pub isa: tensor_ops::Isa,
    /// Every instruction set this CPU supports.
    pub supported: Vec<tensor_ops::Isa>,
    /// Threads of the pool: the `--threads` given, else one per core.
    pub threads: usize,
    /// The CPU model as the operating system names it, with its family and model
    /// numbers where it gives them: CPUs of one name differ (an "AMD EPYC" of
    /// family 25 runs AVX-512 on 256-bit units, Zen 4; one of family 26 on
    /// 512-bit units, Zen 5, with twice the FMA peak).
    pub cpu: String,
}

impl Platform {
    /// This machine and this process's settings.
    pub fn now() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Platform {
            version: env!("CARGO_PKG_VERSION"),
            isa: tensor_ops::isa(),
            supported: tensor_ops::Isa::supported(),
            threads: rayon::current_num_threads(),
            cpu: cpu_name(&cpuinfo),
        }
    }
}

/// The CPU of `/proc/cpuinfo`'s text: "NAME (family F, model M)", or the
/// architecture when the text names none.
///
/// ```
/// let info = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n";
/// assert_eq!(lenet_cli::cpu_name(info), "AMD EPYC (family 25, model 17)");
/// ```
pub fn cpu_name(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(name) = field("model name") else {
        return std::env::consts::ARCH.to_string();
    };
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    }
}
