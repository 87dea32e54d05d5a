//! `cargo bench`: the benchmarks of `condenser bench` (GFLOP/s, GB/s, images/s).
//! Set CONDENSER_BENCH_FILTER to run a subset, CONDENSER_BENCH_RUNS for more runs,
//! CONDENSER_BENCH_JSON=1 for one JSON object per result. It uses only the
//! library's public API, so benches/before_after.sh can build this file against
//! an older commit and compare the two back to back.

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
    let json = std::env::var("CONDENSER_BENCH_JSON").is_ok_and(|v| v == "1");
    let mut print = |r: &condenser::bench::BenchResult| {
        println!("{}", if json { r.to_json() } else { r.to_row() })
    };
    let all = run_kernels(&gpu, &opts, &mut print)
        .and_then(|_| run_train_steps(&gpu, &opts, &mut print))
        .and_then(|_| run_kd_step(&gpu, &opts, &mut print))
        .and_then(|_| run_inference(&gpu, &opts, &mut print));
    if let Err(e) = all {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
