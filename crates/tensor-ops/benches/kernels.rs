//! Criterion benchmarks of the tensor-ops kernels at LeNet-5's real shapes:
//! `cargo bench -p tensor-ops` (add `-- --quick` for a fast pass).
//!
//! Throughput is reported in elements per second where one element is one
//! floating-point operation (a multiply-add counts 2), so "Gelem/s" reads as
//! GFLOP/s. Convolution FLOPs count only connected channel pairs (C3: 60 of 96),
//! whatever the variant computes: `2 * batch * pairs * K^2 * H_out * W_out` per pass;
//! "backward" is both backward passes (to the input and to the weights), 2x that.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench stops at the first surprise
#![allow(missing_docs)] // criterion_group! writes an undocumented `benches`

use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::pool::{self, PoolShape};
use tensor_ops::{subsample, Activation, Algo};

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

struct Layer {
    name: &'static str,
    shape: ConvShape,
    table: Option<ConnTable>,
}

fn layers(batch: usize) -> Vec<Layer> {
    let s = |in_c, size, out_c| ConvShape::square(batch, in_c, size, out_c, 5);
    vec![
        Layer {
            name: "c1",
            shape: s(1, 32, 6),
            table: None,
        },
        Layer {
            name: "c3",
            shape: s(6, 14, 16),
            table: Some(ConnTable::lenet5_c3()),
        },
        Layer {
            name: "c5",
            shape: s(16, 5, 120),
            table: None,
        },
    ]
}

fn conv_benches(c: &mut Criterion) {
    for batch in [1, 32, 256] {
        for layer in layers(batch) {
            let s = layer.shape;
            let t = layer.table.as_ref();
            let x = values(s.x_len());
            let mut w = values(s.w_len());
            if let Some(t) = t {
                t.mask_weights(&mut w);
            }
            let b = values(s.out_c);
            let dy = values(s.y_len());
            let flops = s.flops(t);
            let mut group = c.benchmark_group(format!("{}/batch{batch}", layer.name));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
            for algo in Algo::ALL {
                let mut ws = ConvWorkspace::default();
                let mut y = vec![0.0; s.y_len()];
                group.throughput(Throughput::Elements(flops));
                group.bench_function(BenchmarkId::new("forward", algo.name()), |bench| {
                    bench.iter(|| conv::forward(algo, &s, t, &x, &w, &b, &mut y, &mut ws))
                });
                let (mut dx, mut dw, mut db) =
                    (vec![0.0; s.x_len()], vec![0.0; s.w_len()], vec![0.0; s.out_c]);
                group.throughput(Throughput::Elements(2 * flops));
                group.bench_function(BenchmarkId::new("backward", algo.name()), |bench| {
                    bench.iter(|| {
                        conv::weight_backward(algo, &s, t, &x, &dy, &mut dw, &mut db, &mut ws);
                        conv::x_backward(algo, &s, t, &w, &dy, &mut dx, &mut ws);
                    })
                });
            }
            group.finish();
        }
    }
}

fn pool_benches(c: &mut Criterion) {
    for batch in [1, 32, 256] {
        let s = PoolShape {
            batch,
            c: 6,
            h: 28,
            w: 28,
        };
        let x = values(s.x_len());
        let mut y = vec![0.0; s.y_len()];
        let mut am = vec![0u8; s.y_len()];
        let mut dx = vec![0.0; s.x_len()];
        let dy = values(s.y_len());
        let coeff = values(6);
        let mut group = c.benchmark_group(format!("s2/batch{batch}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(s.x_len() as u64));
        group.bench_function("avg_forward", |b| b.iter(|| pool::avg_forward(&s, &x, &mut y)));
        group.bench_function("max_forward", |b| {
            b.iter(|| pool::max_forward(&s, &x, &mut y, &mut am))
        });
        group.bench_function("subsample_forward", |b| {
            b.iter(|| subsample::forward(&s, &x, &coeff, &coeff, &mut y))
        });
        group.bench_function("subsample_x_backward", |b| {
            b.iter(|| subsample::x_backward(&s, &coeff, &dy, &mut dx))
        });
        group.bench_function("scaled_tanh_forward", |b| {
            b.iter(|| Activation::ScaledTanh.forward(&x, &mut dx));
        });
        group.finish();
    }
}

/// The machine's FMA ceiling on one thread, to read the kernels' GFLOP/s against:
/// 12 independent chains of fused multiply-adds on the registers of the
/// instruction set the kernels use (AVX-512: 16 lanes, AVX2: 8; enough chains to
/// cover the FMA latency on two FMA units), nothing loaded or stored in the loop.
/// Reported as `peak/fma_1_thread_<isa>`; `LENET_SIMD=avx2` measures AVX2's
/// ceiling on an AVX-512 CPU.
fn peak_bench(c: &mut Criterion) {
    const CHAINS: usize = 12;
    const STEPS: usize = 100_000;
    let isa = tensor_ops::isa();
    let mut g = c.benchmark_group("peak");
    g.throughput(Throughput::Elements((2 * isa.lanes() * CHAINS * STEPS) as u64));
    g.bench_function(format!("fma_1_thread_{isa}"), |bench| {
        bench.iter(|| peak::chains(isa, CHAINS, STEPS))
    });
    g.finish();
}

mod peak {
    //! FMA chains per instruction set, each compiled for its own (the bench is
    //! built without `target-cpu`, like everything else).
    use tensor_ops::Isa;

    pub fn chains(isa: Isa, chains: usize, steps: usize) -> f32 {
        let (m, a) = (std::hint::black_box(0.999f32), std::hint::black_box(0.001f32));
        match isa {
            // SAFETY: `isa()` returns only what the CPU supports
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512(chains, steps, m, a) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2(chains, steps, m, a) },
            _ => {
                // plain multiply-adds (no FMA to count on)
                let mut acc = vec![[1.0f32; 8]; chains];
                for _ in 0..steps {
                    for chain in acc.iter_mut() {
                        for v in chain.iter_mut() {
                            *v = *v * m + a;
                        }
                    }
                }
                acc.iter().flatten().sum()
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn avx512(chains: usize, steps: usize, m: f32, a: f32) -> f32 {
        use std::arch::x86_64::*;
        let (m, a) = (_mm512_set1_ps(m), _mm512_set1_ps(a));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..steps {
            for c in acc.iter_mut().take(chains) {
                *c = _mm512_fmadd_ps(*c, m, a);
            }
        }
        let mut out = [0.0f32; 16];
        // SAFETY: `out` holds exactly one register's lanes.
        unsafe {
            _mm512_storeu_ps(
                out.as_mut_ptr(),
                acc.iter().fold(_mm512_setzero_ps(), |s, &c| _mm512_add_ps(s, c)),
            )
        };
        out.iter().sum()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(chains: usize, steps: usize, m: f32, a: f32) -> f32 {
        use std::arch::x86_64::*;
        let (m, a) = (_mm256_set1_ps(m), _mm256_set1_ps(a));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..steps {
            for c in acc.iter_mut().take(chains) {
                *c = _mm256_fmadd_ps(*c, m, a);
            }
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds exactly one register's lanes.
        unsafe {
            _mm256_storeu_ps(
                out.as_mut_ptr(),
                acc.iter().fold(_mm256_setzero_ps(), |s, &c| _mm256_add_ps(s, c)),
            )
        };
        out.iter().sum()
    }
}

criterion_group!(benches, conv_benches, pool_benches, peak_bench);
/// criterion's `main`, run on a thread of a rayon pool (of `RAYON_NUM_THREADS`
/// threads, or one per core), as `lenet` runs its work: called from outside the
/// pool, every parallel call would first hand its work over and wait for a
/// thread to wake (C5's forward pass at batch 32 on a pool of one thread: 84-141
/// us from outside, 19-20 us from inside, on an AMD EPYC).
fn main() {
    let pool = rayon::ThreadPoolBuilder::new().build().expect("a thread pool");
    pool.install(|| {
        benches();
        Criterion::default().configure_from_args().final_summary();
    });
}
