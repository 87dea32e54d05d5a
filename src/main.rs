//! The condenser command line: parses arguments and calls the library.

use clap::{Parser, Subcommand};

use condenser::bench::{BenchOptions, run_kernels};
use condenser::{Gpu, Result};

#[derive(Parser)]
#[command(
    name = "condenser",
    version,
    about = "Multi-path knowledge distillation on any GPU (wgpu)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the adapter condenser picks: name, backend, driver, limits, features.
    Info,
    /// Kernel benchmarks: GFLOP/s of matmul, GB/s of reductions and softmax.
    Bench {
        /// One JSON object per result (fields name, shape, gflops|gbps, median_ms, adapter).
        #[arg(long)]
        json: bool,
        /// Timed runs per case; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only cases whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Small sizes only (a smoke test).
        #[arg(long)]
        quick: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Info => info(),
        Cmd::Bench {
            json,
            runs,
            filter,
            quick,
        } => {
            let gpu = Gpu::new()?;
            if !json {
                println!(
                    "adapter: {} ({:?} kernels)",
                    gpu.adapter_name(),
                    gpu.class()
                );
            }
            let opts = BenchOptions {
                runs,
                filter,
                quick,
            };
            run_kernels(&gpu, &opts, &mut |r| {
                if json {
                    println!("{}", r.to_json());
                } else {
                    println!("{}", r.to_row());
                }
            })?;
            Ok(())
        }
    }
}

fn info() -> Result<()> {
    let gpu = Gpu::new()?;
    let r = gpu.report();
    println!("adapter:     {}", r.name);
    println!("backend:     {}", r.backend);
    println!("device type: {}", r.device_type);
    println!("driver:      {} {}", r.driver, r.driver_info);
    println!("kernels:     {:?} variants", r.class);
    println!("limits:");
    for (k, v) in &r.limits {
        println!("  {k:<40} {v}");
    }
    println!("features:    {}", r.features.join(", "));
    match gpu.pipeline_cache_path() {
        Some(p) => println!("pipeline cache: {}", p.display()),
        None => println!("pipeline cache: not supported by this adapter"),
    }
    Ok(())
}
