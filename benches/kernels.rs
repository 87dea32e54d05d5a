//! `cargo bench`: the kernel benchmarks of `condenser bench` (GFLOP/s, GB/s).
//! Set CONDENSER_BENCH_FILTER to run a subset, CONDENSER_BENCH_RUNS for more runs.

use condenser::Gpu;
use condenser::bench::{BenchOptions, run_inference, run_kd_step, run_kernels, run_train_steps};

fn main() {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "adapter: {} ({:?} kernels)",
        gpu.adapter_name(),
        gpu.class()
    );
    let opts = BenchOptions {
        runs: std::env::var("CONDENSER_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
        filter: std::env::var("CONDENSER_BENCH_FILTER").ok(),
        quick: false,
        profile: false,
    };
    let mut print = |r: &condenser::bench::BenchResult| println!("{}", r.to_row());
    let all = run_kernels(&gpu, &opts, &mut print)
        .and_then(|_| run_train_steps(&gpu, &opts, &mut print))
        .and_then(|_| run_kd_step(&gpu, &opts, &mut print))
        .and_then(|_| run_inference(&gpu, &opts, &mut print));
    if let Err(e) = all {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
