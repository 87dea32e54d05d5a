//! The condenser command line: parses arguments and calls the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use condenser::bench::{BenchOptions, run_inference, run_kd_step, run_kernels, run_train_steps};
use condenser::data::{DataOptions, Split};
use condenser::distill::compare::{CompareConfig, DEFAULT_RUNS, compare};
use condenser::distill::trainer::{RunConfig, RunResult, load_model, run};
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
    /// Kernel and training-step benchmarks: GFLOP/s, GB/s, images/s.
    Bench(BenchArgs),
    /// Data sets: size, classes, and a grid of samples as PNG.
    Data {
        #[command(subcommand)]
        cmd: DataCmd,
    },
    /// Train one model alone (a teacher, or a student baseline).
    Train {
        /// The architecture: cnn<w>, resnet<d>[x4], wrn-<d>-<k>.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Distil a teacher into a student along several paths.
    Distill(DistillArgs),
    /// Test accuracy (classification) or mIoU and pixel accuracy (segmentation) of a saved model.
    Eval {
        #[arg(long)]
        model: String,
        #[arg(long)]
        weights: PathBuf,
        /// classify or segment (default: what the weights file says).
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Several configurations against one teacher and the same seeds: a table and plots.
    Compare(CompareArgs),
    /// Write a trained model as ONNX (opset 17, dynamic batch), checked by
    /// reading it back; batch norms can be folded into the convolutions.
    Export {
        /// The architecture (cnn8, resnet8x4, ..., or onnx:<file>).
        #[arg(long)]
        model: String,
        /// Its weights (model.safetensors of a run).
        #[arg(long)]
        weights: PathBuf,
        /// Where to write the .onnx file.
        #[arg(long)]
        out: PathBuf,
        /// Fold each batch norm into the convolution before it.
        #[arg(long)]
        fold_bn: bool,
        /// Replace --out if it exists.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List an ONNX file's inputs, outputs and every tensor it computes with its
    /// shape (for one image), to pick --teacher-features.
    Inspect {
        /// The .onnx file.
        model: PathBuf,
        /// Image height and width, when the graph leaves them open.
        #[arg(long)]
        size: Option<usize>,
    },
    /// Draw the plots of a comparison again from its results.json (PNG and SVG).
    Plot {
        /// A results.json written by compare or demo.
        #[arg(long)]
        results: PathBuf,
        /// Folder for accuracy.png and weights_<aggregator>.png (default: beside results.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The demo: on the built-in shapes world, train a teacher and distil students
    /// with each path and each aggregation; print the table, write plots.
    Demo {
        /// Output folder (default: runs/demo, or runs/demo-2, ... if that holds an earlier demo).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted demo in --out.
        #[arg(long)]
        resume: bool,
        /// Replace the demo that --out holds.
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// A smaller, faster demo (a smoke test).
        #[arg(long)]
        quick: bool,
        /// Only this task: classify, segment or detect (default: all three, one table each).
        #[arg(long)]
        task: Option<String>,
    },
}

#[derive(Args)]
struct BenchArgs {
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
    /// After each training-step case, time one step kernel by kernel and
    /// print where the device time goes (timestamp queries on GPUs; on CPU adapters and
    /// adapters without timestamps, the wall clock of each launch run alone).
    #[arg(long)]
    profile: bool,
}

#[derive(Args)]
struct DistillArgs {
    #[command(flatten)]
    models: ModelArgs,
    /// soft,hint,at,nst,logits (hint@2 picks a stage).
    #[arg(long)]
    paths: Option<String>,
    /// equal | fixed[:w1,w2,..] | adaptive | gradnorm | dwa | pcgrad | mgda
    #[arg(long)]
    aggregate: Option<String>,
    /// One path per stage for feature paths at several stages.
    #[arg(long)]
    layerwise: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// (Without teacher weights, compare trains the teacher first.)
    #[command(flatten)]
    models: ModelArgs,
    #[arg(long, default_value_t = 10)]
    teacher_epochs: usize,
    /// Runs to compare.
    #[arg(long, default_value = DEFAULT_RUNS)]
    runs: String,
    /// Paths of the aggregated runs.
    #[arg(long, default_value = "soft,hint,at")]
    paths: String,
    /// Seeds, comma-separated.
    #[arg(long, default_value = "0")]
    seeds: String,
    /// MiB of teacher outputs the runs of a seed share (computed once per
    /// step, not once per run); 0 computes them in every run.
    #[arg(long, default_value_t = 2048)]
    teacher_cache_mib: u64,
    /// MiB of teacher outputs past --teacher-cache-mib kept in files in the
    /// comparison's .teacher-cache folder (read back on each hit; removed at
    /// the end); 0, the default, keeps none.
    #[arg(long, default_value_t = 0)]
    teacher_cache_disk_mib: u64,
    #[command(flatten)]
    run: RunArgs,
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

/// The teacher and the student of distill and compare.
#[derive(Args)]
struct ModelArgs {
    /// An architecture, or `onnx` for a graph in --teacher-weights (.onnx).
    #[arg(long)]
    teacher_model: Option<String>,
    /// The teacher's weights (.safetensors) or graph (.onnx).
    #[arg(long)]
    teacher_weights: Option<PathBuf>,
    /// An ONNX teacher's tensors the feature paths read, comma-separated,
    /// early to late (`condenser inspect` lists them).
    #[arg(long)]
    teacher_features: Option<String>,
    /// An architecture, or `onnx:<file.onnx>` to train an ONNX graph.
    #[arg(long)]
    student_model: Option<String>,
    /// The same as --teacher-features for an ONNX student.
    #[arg(long)]
    student_features: Option<String>,
}

impl ModelArgs {
    /// Flags given on the command line override the configuration's values.
    fn apply(self, c: &mut RunConfig) {
        c.teacher_model = self.teacher_model.or(c.teacher_model.take());
        c.teacher_weights = self.teacher_weights.or(c.teacher_weights.take());
        if let Some(f) = self.teacher_features {
            c.teacher_features = f;
        }
        if let Some(f) = self.student_features {
            c.student_features = f;
        }
        if let Some(s) = self.student_model {
            c.student_model = s;
        }
    }
}

#[derive(Args)]
struct DataArgs {
    /// fashion-mnist, mnist, cifar10, cifar100, shapes, or folder:<path>.
    #[arg(long, default_value = "shapes")]
    data: String,
    /// Folder of the data files (default: the data set's usual place).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// train or test (default: test for eval, train otherwise).
    #[arg(long)]
    split: Option<String>,
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
    fn split(&self, default: Split) -> Result<Split> {
        self.split.as_deref().map_or(Ok(default), str::parse)
    }

    fn options(&self, limit: Option<usize>) -> DataOptions {
        DataOptions {
            data_dir: self.data_dir.clone(),
            limit,
            size: self.size,
            seed: self.seed,
            count: None,
        }
    }

    fn load(&self, split: Split) -> Result<condenser::data::ImageSet> {
        condenser::data::load(&self.data, split, &self.options(self.limit))
    }
}

/// Options shared by train, distill and compare; each overrides the config file.
#[derive(Args)]
struct RunArgs {
    /// A TOML file with any RunConfig fields; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// classify (default), segment (per-pixel classes; shapes or voc:<folder>) or detect.
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    train_limit: Option<usize>,
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long)]
    image_size: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f32>,
    #[arg(long)]
    weight_decay: Option<f32>,
    /// sgd, adam or adamw
    #[arg(long)]
    optimizer: Option<String>,
    /// constant, cosine, step:<every>:<gamma>, multistep:<m1>,<m2>:<gamma>
    #[arg(long)]
    schedule: Option<String>,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder (checkpoint, metrics.jsonl, model.safetensors); default: a new
    /// folder under runs/ (runs/<name>, runs/<name>-2, ...), never an earlier run's.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    resume: bool,
    /// Replace the run that the output folder already holds.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

impl RunArgs {
    fn config(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(p) => RunConfig::from_toml(p)?,
            None => RunConfig::default(),
        };
        macro_rules! set {
            ($($f:ident => $t:ident),*) => { $(if let Some(v) = &self.$f { c.$t = v.clone().into(); })* };
        }
        set!(data => data, epochs => epochs, batch_size => batch_size, lr => lr, weight_decay => weight_decay,
             temperature => temperature, seed => seed, out => out_dir);
        // Names are parsed once, here, into the settings' own types.
        if let Some(o) = &self.optimizer {
            c.optimizer = o.parse()?;
        }
        if let Some(s) = &self.schedule {
            c.schedule = s.parse()?;
        }
        if let Some(t) = &self.task {
            c.task = t.parse()?;
        }
        if self.data_dir.is_some() {
            c.data_dir = self.data_dir.clone();
        }
        if self.train_limit.is_some() {
            c.train_limit = self.train_limit;
        }
        if self.test_limit.is_some() {
            c.test_limit = self.test_limit;
        }
        if self.image_size.is_some() {
            c.image_size = self.image_size;
        }
        c.resume |= self.resume;
        c.overwrite |= self.overwrite;
        c.progress = !self.quiet;
        Ok(c)
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn report(r: &RunResult) {
    let ag = r.agreement.map_or(String::new(), |a| {
        format!(", agreement with teacher {:.2}%", a * 100.0)
    });
    let metric = match r.task {
        condenser::tasks::Task::Classify => "test accuracy",
        t => t.metric(),
    };
    let extra: String = r
        .extra
        .iter()
        .map(|(k, v)| format!(", {k} {:.2}%", v * 100.0))
        .collect();
    println!(
        "{:<14} {metric} {:.2}%{extra}{ag} ({} params, {:.0} s)",
        r.name,
        r.test_acc * 100.0,
        r.params,
        r.seconds
    );
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Info => info(),
        Cmd::Bench(a) => bench(a),
        Cmd::Data {
            cmd: DataCmd::Show { data, out, count },
        } => data_show(&data, &out, count),
        Cmd::Train { model, run: args } => train(model, &args),
        Cmd::Distill(a) => distill(a),
        Cmd::Export {
            model,
            weights,
            out,
            fold_bn,
            overwrite,
            data,
        } => export(&model, &weights, &out, (fold_bn, overwrite), &data),
        Cmd::Inspect { model, size } => {
            let gpu = Gpu::new()?;
            print!("{}", condenser::onnx::inspect(&gpu, &model, size)?);
            Ok(())
        }
        Cmd::Eval {
            model,
            weights,
            task,
            data,
        } => eval(&model, &weights, task.as_deref(), &data),
        Cmd::Compare(a) => compare_cmd(a),
        Cmd::Plot { results, out } => plot(&results, out),
        Cmd::Demo {
            out,
            resume,
            overwrite,
            quick,
            task,
        } => demo(out, resume, overwrite, quick, task.as_deref()),
    }
}

/// `condenser bench`: every case (or those `--filter` names), as rows or JSON.
fn bench(a: BenchArgs) -> Result<()> {
    if a.runs == 0 {
        return Err(condenser::Error::range("--runs", 0, "at least 1 timed run"));
    }
    let gpu = Gpu::new()?;
    if !a.json {
        println!(
            "adapter: {} ({:?} kernels)",
            gpu.adapter_name(),
            gpu.class()
        );
    }
    let opts = BenchOptions {
        runs: a.runs,
        filter: a.filter,
        quick: a.quick,
        profile: a.profile,
    };
    let json = a.json;
    let mut print = |r: &condenser::bench::BenchResult| {
        if json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_row());
        }
    };
    let cases = run_kernels(&gpu, &opts, &mut print)?.len()
        + condenser::bench_norm::run_norm_kernels(&gpu, &opts, &mut print)?.len()
        + run_train_steps(&gpu, &opts, &mut print)?.len()
        + condenser::bench_replay::run_replay_steps(&gpu, &opts, &mut print)?.len()
        + run_kd_step(&gpu, &opts, &mut print)?.len()
        + run_inference(&gpu, &opts, &mut print)?.len();
    match opts.filter {
        Some(f) if cases == 0 => Err(condenser::Error::Config(format!(
            "no bench case's name contains {f:?}: names begin with matmul_, \
             conv3x3_, softmax_, add_, sum_, max_cols_, bn_, train_step_, replay_step_, \
             kd_step_ or infer_ (run without --filter to see them all)"
        ))),
        _ => Ok(()),
    }
}

/// `condenser data show`: the data set's description and a grid of samples.
fn data_show(data: &DataArgs, out: &std::path::Path, count: usize) -> Result<()> {
    if count == 0 {
        return Err(condenser::Error::range("--count", 0, "at least 1 sample"));
    }
    let set = data.load(data.split(Split::Train)?)?;
    println!("{}", set.describe());
    condenser::report::grid::sample_grid(&set, count, 8)?.save_png(out)?;
    println!(
        "wrote {} samples to {}",
        count.min(set.len()),
        out.display()
    );
    Ok(())
}

/// `condenser train`: one model alone, no teacher.
fn train(model: Option<String>, args: &RunArgs) -> Result<()> {
    let mut c = args.config()?;
    if let Some(m) = model {
        c.student_model = m;
    }
    c.teacher_model = None;
    c.teacher_weights = None;
    c.paths.clear();
    if c.name.is_empty() {
        c.name = c.student_model.clone();
    }
    let gpu = Gpu::new()?;
    let r = run(&gpu, &c)?;
    report(&r);
    println!(
        "weights: {}",
        condenser::distill::trainer::model_path(&r.out_dir).display()
    );
    Ok(())
}

/// `condenser distill`: one student from a teacher along the given paths.
fn distill(a: DistillArgs) -> Result<()> {
    let mut c = a.run.config()?;
    a.models.apply(&mut c);
    if let Some(p) = a.paths {
        c.paths = p;
    }
    if let Some(agg) = a.aggregate {
        c.aggregate = agg.parse()?;
    }
    c.layerwise |= a.layerwise;
    if c.name.is_empty() {
        c.name = c.aggregate.to_string();
    }
    let gpu = Gpu::new()?;
    let r = run(&gpu, &c)?;
    report(&r);
    println!("run folder: {}", r.out_dir.display());
    Ok(())
}

/// A comma-separated list, blanks dropped.
fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `condenser compare`: several runs against one teacher and the same seeds.
fn compare_cmd(a: CompareArgs) -> Result<()> {
    let mut base = a.run.config()?;
    a.models.apply(&mut base);
    let seeds = a
        .seeds
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| condenser::Error::Config(format!("bad seed {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let cc = CompareConfig {
        out_dir: base.out_dir.clone(),
        base,
        runs: comma_list(&a.runs),
        seeds,
        all_paths: a.paths,
        teacher_epochs: a.teacher_epochs,
        teacher_cache_bytes: a.teacher_cache_mib.saturating_mul(1 << 20),
        teacher_cache_disk_bytes: a.teacher_cache_disk_mib.saturating_mul(1 << 20),
    };
    let gpu = Gpu::new()?;
    let out = compare(&gpu, &cc, &mut report)?;
    println!("\n{}", out.markdown);
    let st = out.teacher_cache;
    if st.hits + st.misses > 0 {
        // What the budgets bought, to size them: batches the runs after the
        // first of a seed took from the cache instead of the teacher.
        println!(
            "teacher outputs: {} batches reused ({} from spill files), {} computed",
            st.hits, st.disk_hits, st.misses
        );
    }
    println!("table, CSV and plots in {}", out.out_dir.display());
    Ok(())
}

/// `condenser plot`: a comparison's plots again from its results.json.
fn plot(results: &std::path::Path, out: Option<PathBuf>) -> Result<()> {
    let text = condenser::fsutil::read_text(results, 256 << 20)?;
    let runs: Vec<RunResult> = serde_json::from_str(&text).map_err(|e| {
        condenser::Error::Config(format!(
            "{} is not a results.json of condenser compare: {e}",
            condenser::fsutil::shown(results)
        ))
    })?;
    let dir = out.unwrap_or_else(|| {
        results
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    });
    condenser::distill::compare::plots(&runs, &dir)?;
    println!("plots written to {}", dir.display());
    Ok(())
}

/// `condenser demo`: one comparison per task, each in its own sub-folder.
fn demo(
    out: Option<PathBuf>,
    resume: bool,
    overwrite: bool,
    quick: bool,
    task: Option<&str>,
) -> Result<()> {
    use condenser::distill::demo;
    if resume && out.is_none() {
        return Err(condenser::Error::Config(
            "demo --resume needs --out <the folder of the demo to continue>".into(),
        ));
    }
    let tasks: Vec<condenser::tasks::Task> = match task {
        Some(t) => vec![t.parse()?],
        None => demo::TASKS.to_vec(),
    };
    let root =
        out.unwrap_or_else(|| condenser::fsutil::fresh_dir(std::path::Path::new("runs/demo")));
    // Every task's comparison checked before the first one trains.
    let configs: Vec<_> = tasks
        .iter()
        .map(|&t| {
            let mut cc = demo::config(&root.join(t.name()), quick, t);
            (cc.base.resume, cc.base.overwrite) = (resume, overwrite);
            cc.validate().map(|_| (t, cc))
        })
        .collect::<Result<_>>()?;
    let gpu = Gpu::new()?;
    let mut tables = Vec::new();
    for (t, cc) in configs {
        let started = std::time::Instant::now();
        println!(
            "demo, {t}: {}, teacher {} vs student {}; results in {}",
            cc.base.data,
            cc.base.teacher_model.as_deref().unwrap_or("?"),
            cc.base.student_model,
            cc.out_dir.display()
        );
        let res = compare(&gpu, &cc, &mut report)?;
        let secs = started.elapsed().as_secs_f32();
        println!("\n{}\n({t}: {secs:.0} s)\n", res.markdown);
        tables.push((t, secs));
    }
    for (t, secs) in &tables {
        println!(
            "{t}: {secs:.0} s, plots in {}",
            root.join(t.name()).display()
        );
    }
    Ok(())
}

/// `condenser export`: the model and its input as the weights file says
/// (the data set only where the file does not).
fn export(
    model: &str,
    weights: &std::path::Path,
    out: &std::path::Path,
    (fold_bn, overwrite): (bool, bool),
    data: &DataArgs,
) -> Result<()> {
    use condenser::tasks::Task;
    let task = condenser::distill::trainer::file_task(weights)?;
    let gpu = Gpu::new()?;
    let train = || condenser::data::load(&data.data, Split::Train, &data.options(None));
    let input = condenser::distill::trainer::input_of(weights, train)?;
    let num_classes = match task {
        Task::Classify | Task::Detect if !input.classes.is_empty() => input.classes.len(),
        _ => {
            let cfg = RunConfig {
                task,
                ..RunConfig::default()
            };
            cfg.num_classes(&train()?)?
        }
    };
    let q = condenser::distill::trainer::ModelQuery {
        arch: model,
        task,
        in_channels: input.channels,
        num_classes,
    };
    let m = load_model(&gpu, &q, weights)?;
    let opts = condenser::onnx::export::ExportOptions {
        fold_bn,
        norm: Some(input.norm()),
    };
    let chw = [input.channels, input.height, input.width];
    condenser::onnx::export::save(m.model.as_ref(), chw, out, &opts, overwrite)?;
    println!(
        "wrote {} ({model}, input [N, {}, {}, {}]{})",
        out.display(),
        chw[0],
        chw[1],
        chw[2],
        if fold_bn { ", batch norm folded" } else { "" }
    );
    Ok(())
}

fn eval(model: &str, weights: &std::path::Path, task: Option<&str>, data: &DataArgs) -> Result<()> {
    use condenser::tasks::Task;
    let task: Task = match task {
        Some(t) => t.parse()?,
        None => condenser::distill::trainer::file_task(weights)?,
    };
    let gpu = Gpu::new()?;
    let split = data.split(Split::Test)?;
    let set = data.load(split)?;
    // Files without a stored normalisation: the whole training split's statistics.
    let input = condenser::distill::trainer::input_of(weights, || {
        condenser::data::load(&data.data, Split::Train, &data.options(None))
    })?;
    input.check_data(&set, weights)?;
    let cfg = RunConfig {
        task,
        ..RunConfig::default()
    };
    let q = condenser::distill::trainer::ModelQuery {
        arch: model,
        task,
        in_channels: set.channels,
        num_classes: cfg.num_classes(&set)?,
    };
    let m = load_model(&gpu, &q, weights)?;
    let loader = condenser::data::loader::Loader::new(
        &gpu,
        &set,
        condenser::data::loader::LoaderConfig::eval(64, Some(input.norm())),
    )?;
    let pred = condenser::tasks::predictions(m.model.as_ref(), &loader, q.num_classes)?;
    let scores = pred.scores();
    let split_name = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    let mut line = format!(
        "{model} on {} {split_name} split ({} images): {} {:.2}%",
        data.data,
        set.len(),
        if task == Task::Classify {
            "accuracy"
        } else {
            task.metric()
        },
        scores.primary * 100.0
    );
    for (k, v) in &scores.extra {
        line.push_str(&format!(", {k} {:.2}%", v * 100.0));
    }
    println!("{line}");
    Ok(())
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
