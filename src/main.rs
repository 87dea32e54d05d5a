//! The condenser command line: parses arguments and calls the library.

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use condenser::bench::{BenchOptions, run_kernels, run_train_steps};
use condenser::data::{DataOptions, Split};
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
        /// One JSON object per result (fields name, shape, gflops|gbps|images_per_s, median_ms, adapter).
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
    /// Data sets: size, classes, and a grid of samples as PNG.
    Data {
        #[command(subcommand)]
        cmd: DataCmd,
    },
}

#[derive(Subcommand)]
enum DataCmd {
    /// Print a data set's size and classes and save a grid of samples.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the grid of samples (PNG).
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Samples in the grid.
        #[arg(long, default_value_t = 32)]
        count: usize,
    },
}

#[derive(clap::Args)]
struct DataArgs {
    /// fashion-mnist, mnist, cifar10, cifar100, shapes, or folder:<path>.
    #[arg(long, default_value = "shapes")]
    data: String,
    /// Folder of the data files (default: the data set's usual place).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// train or test.
    #[arg(long, default_value = "train")]
    split: String,
    /// Image side for image folders and the shapes world.
    #[arg(long)]
    size: Option<usize>,
    /// Seed of the shapes world.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
}

impl DataArgs {
    fn load(&self) -> Result<condenser::data::ImageSet> {
        let split: Split = self.split.parse()?;
        let opts = DataOptions {
            data_dir: self.data_dir.clone(),
            limit: self.limit,
            size: self.size,
            seed: self.seed,
            count: None,
        };
        condenser::data::load(&self.data, split, &opts)
    }
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
            let mut print = |r: &condenser::bench::BenchResult| {
                if json {
                    println!("{}", r.to_json());
                } else {
                    println!("{}", r.to_row());
                }
            };
            run_kernels(&gpu, &opts, &mut print)?;
            run_train_steps(&gpu, &opts, &mut print)?;
            Ok(())
        }
        Cmd::Data {
            cmd: DataCmd::Show { data, out, count },
        } => {
            let set = data.load()?;
            println!("{}", set.describe());
            condenser::report::grid::sample_grid(&set, count, 8).save_png(&out)?;
            println!(
                "wrote {} samples to {}",
                count.min(set.len()),
                out.display()
            );
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
