//! Kernel benchmarks shared by `condenser bench` and `cargo bench`: GFLOP/s of
//! matmul, GB/s of reductions, softmax and elementwise ops. Each figure is the
//! median of several runs after a warm-up; the time of a run is GPU time from
//! timestamp queries where the adapter has them, else wall time around a sync.

use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::matmul::{Gemm, MatmulKernel, gemm};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Timed runs per case (the median is reported).
    pub runs: usize,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Smaller sizes, for a smoke test.
    pub quick: bool,
    /// Print a per-kernel breakdown of one step of each training-step case.
    pub profile: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            runs: 5,
            filter: None,
            quick: false,
            profile: false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Rate {
    Gflops(f64),
    Gbps(f64),
    ImagesPerSec(f64),
}

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub name: String,
    pub shape: String,
    pub rate: Rate,
    pub median_ms: f64,
    /// "gpu" (timestamp queries) or "wall".
    pub clock: &'static str,
    pub adapter: String,
    /// Step cases: the CPU time the calling thread spent per step (recording
    /// and submitting work, not waiting for it), median; None where the OS
    /// does not report a thread's CPU time (Linux only, see `thread_cpu_ns`).
    pub host_ms: Option<f64>,
}

impl BenchResult {
    pub fn to_json(&self) -> String {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), self.name.clone().into());
        o.insert("shape".into(), self.shape.clone().into());
        match self.rate {
            Rate::Gflops(g) => o.insert("gflops".into(), round(g).into()),
            Rate::Gbps(g) => o.insert("gbps".into(), round(g).into()),
            Rate::ImagesPerSec(g) => o.insert("images_per_s".into(), round(g).into()),
        };
        o.insert("median_ms".into(), round(self.median_ms).into());
        o.insert("clock".into(), self.clock.into());
        if let Some(h) = self.host_ms {
            o.insert("host_ms".into(), round(h).into());
        }
        o.insert("adapter".into(), self.adapter.clone().into());
        serde_json::Value::Object(o).to_string()
    }

    pub fn to_row(&self) -> String {
        let rate = match self.rate {
            Rate::Gflops(g) => format!("{g:9.2} GFLOP/s"),
            Rate::Gbps(g) => format!("{g:9.2} GB/s   "),
            Rate::ImagesPerSec(g) => format!("{g:9.2} images/s"),
        };
        let host = match self.host_ms {
            Some(h) => format!(", host {h:.1} ms"),
            None => String::new(),
        };
        format!(
            "{:<28} {:<24} {rate} {:>10.3} ms ({}{host})",
            self.name, self.shape, self.median_ms, self.clock
        )
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times `f` (which launches work): one warm-up, then `runs` timed runs.
/// Returns (median ms, clock).
pub fn time_op(
    gpu: &Gpu,
    runs: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(f64, &'static str)> {
    f()?;
    gpu.sync()?;
    let mut times = Vec::with_capacity(runs);
    // On CPU adapters the device is this CPU: the wall clock is the cost, and
    // llvmpipe's timestamps can land on the wrong kernel (see gpu::timing).
    let timestamps = gpu.has_timestamps() && gpu.class() == crate::gpu::AdapterClass::Gpu;
    // Short ops run several times per measurement, so that the submit and
    // wait around them stay a small part of it.
    let reps = if timestamps {
        1
    } else {
        reps_for(gpu, &mut f)?
    };
    for _ in 0..runs.max(1) {
        if timestamps {
            gpu.profile_begin()?;
            f()?;
            let prof = gpu.profile_end()?;
            times.push(prof.iter().map(|k| k.ms).sum());
        } else {
            gpu.sync()?;
            let t0 = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            gpu.sync()?;
            times.push(t0.elapsed().as_secs_f64() * 1e3 / reps as f64);
        }
    }
    Ok((median(&mut times), if timestamps { "gpu" } else { "wall" }))
}

/// How many calls of `f` make one wall-clock measurement last at least 20 ms.
fn reps_for(gpu: &Gpu, f: &mut impl FnMut() -> Result<()>) -> Result<usize> {
    let t0 = Instant::now();
    f()?;
    gpu.sync()?;
    let once = t0.elapsed().as_secs_f64() * 1e3;
    Ok((20.0 / once.max(1e-3)).ceil().clamp(1.0, 1000.0) as usize)
}

struct Ctx<'a> {
    gpu: &'a Gpu,
    opts: &'a BenchOptions,
    out: Vec<BenchResult>,
    on_result: &'a mut dyn FnMut(&BenchResult),
}

impl Ctx<'_> {
    fn wants(&self, name: &str) -> bool {
        self.opts
            .filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    }

    fn record(&mut self, name: &str, shape: String, ms: f64, clock: &'static str, rate: Rate) {
        let r = BenchResult {
            name: name.to_string(),
            shape,
            rate,
            median_ms: ms,
            clock,
            adapter: self.gpu.adapter_name().to_string(),
            host_ms: None,
        };
        (self.on_result)(&r);
        self.out.push(r);
    }

    fn matmul(
        &mut self,
        name: &str,
        m: usize,
        n: usize,
        k: usize,
        kernel: Option<MatmulKernel>,
    ) -> Result<()> {
        if !self.wants(name) {
            return Ok(());
        }
        let a = Tensor::rand_uniform(self.gpu, &[m, k], -1.0, 1.0, 1)?;
        let b = Tensor::rand_uniform(self.gpu, &[k, n], -1.0, 1.0, 2)?;
        let c = Tensor::empty(self.gpu, &[m, n], crate::DType::F32)?;
        let (ms, clock) = time_op(self.gpu, self.opts.runs, || {
            gemm(
                &a,
                &b,
                Gemm {
                    c: Some(&c),
                    kernel,
                    ..Gemm::default()
                },
            )
            .map(|_| ())
        })?;
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        self.record(
            name,
            format!("{m}x{k} @ {k}x{n}"),
            ms,
            clock,
            Rate::Gflops(flops / ms / 1e6),
        );
        Ok(())
    }

    /// The 3x3 convolutions of resnet8x4 and resnet32x4 (widths 64, 128, 256 at
    /// 32x32, 16x16, 8x8; batch 64): forward, input gradient and weight
    /// gradient, each as a whole op (im2col, GEMM, col2im where used).
    fn conv_rows(&mut self) -> Result<()> {
        use crate::ops::conv::{
            Conv2dConfig, ConvGeom, conv2d, conv2d_backward_input, conv2d_backward_weight,
        };
        let shapes: &[(usize, usize, usize)] = if self.opts.quick {
            &[(4, 16, 8)]
        } else {
            &[(64, 64, 32), (64, 128, 16), (64, 256, 8)]
        };
        for &(n, c, hw) in shapes {
            let tag = format!("{c}_{hw}x{hw}");
            let names = [
                format!("conv3x3_fwd_{tag}"),
                format!("conv3x3_dx_{tag}"),
                format!("conv3x3_dw_{tag}"),
            ];
            if !names.iter().any(|nm| self.wants(nm)) {
                continue;
            }
            let cfg = Conv2dConfig::new(1, 1);
            let x = Tensor::rand_uniform(self.gpu, &[n, c, hw, hw], -1.0, 1.0, 5)?;
            let w = Tensor::rand_uniform(self.gpu, &[c, c, 3, 3], -0.1, 0.1, 6)?;
            let dy = Tensor::rand_uniform(self.gpu, &[n, c, hw, hw], -1.0, 1.0, 7)?;
            let g = ConvGeom::new(x.shape(), w.shape(), cfg)?;
            let flops = 2.0 * (n * c * hw * hw * c * 9) as f64;
            let shape = format!("[{n}, {c}, {hw}, {hw}] * [{c}, {c}, 3, 3]");
            let mut ops: [Box<dyn FnMut() -> Result<()>>; 3] = [
                Box::new(|| conv2d(&x, &w, None, cfg).map(|_| ())),
                Box::new(|| conv2d_backward_input(&dy, &w, &g).map(|_| ())),
                Box::new(|| conv2d_backward_weight(&dy, &x, &g).map(|_| ())),
            ];
            for (name, op) in names.iter().zip(ops.iter_mut()) {
                if !self.wants(name) {
                    continue;
                }
                let (ms, clock) = time_op(self.gpu, self.opts.runs, op)?;
                self.record(
                    name,
                    shape.clone(),
                    ms,
                    clock,
                    Rate::Gflops(flops / ms / 1e6),
                );
            }
        }
        Ok(())
    }

    /// `bytes`: the traffic of an ideal kernel (each input read once, output written once).
    fn bandwidth(
        &mut self,
        name: &str,
        shape: String,
        bytes: f64,
        f: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        if !self.wants(name) {
            return Ok(());
        }
        let (ms, clock) = time_op(self.gpu, self.opts.runs, f)?;
        self.record(name, shape, ms, clock, Rate::Gbps(bytes / ms / 1e6));
        Ok(())
    }
}

/// Training-step benchmarks: images/s of a full step (forward, loss, backward,
/// SGD update) and the pool's memory before and after `steps` steps.
pub fn run_train_steps(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    use crate::autograd::Var;
    use crate::nn::{self, ModelSpec, build_model};
    use crate::ops::losses::CeConfig;
    use crate::optim::Sgd;
    use crate::tasks::classification::train_step;

    let cases: &[(&str, usize, usize, usize)] = if opts.quick {
        &[("cnn8", 1, 28, 16)]
    } else {
        &[
            ("cnn8", 1, 28, 64),
            // The demo's classification teacher.
            ("cnn32", 3, 24, 64),
            ("resnet8", 3, 32, 64),
            ("resnet8x4", 3, 32, 64),
            // A depthwise-separable student (the benchmarks' MobileNetV2).
            ("mobilenetv2", 3, 32, 64),
        ]
    };
    let mut out = Vec::new();
    for &(arch, c, s, b) in cases {
        let name = format!("train_step_{arch}");
        if !wanted(opts, &name) {
            continue;
        }
        let m = build_model(
            gpu,
            &ModelSpec {
                arch: arch.into(),
                in_channels: c,
                num_classes: 10,
                task: crate::tasks::Task::Classify,
            },
            0,
        )?;
        let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4)?;
        let x = Var::constant(Tensor::rand_uniform(gpu, &[b, c, s, s], -1.0, 1.0, 1)?);
        let labels: Vec<u32> = (0..b as u32).map(|i| i % 10).collect();
        let lab = Tensor::from_u32(gpu, &[b], &labels)?;
        // The warm-up steps create the optimiser state; the pool must not
        // grow after them (the shape column shows it).
        let mut before = None;
        let mut calls = 0;
        let ms = time_steps(gpu, opts, &name, || {
            calls += 1;
            if calls == 3 {
                before = Some(gpu.pool_stats());
            }
            train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default()).map(|_| ())
        })?;
        let (before, after) = (before.unwrap_or_default(), gpu.pool_stats());
        let shape = format!(
            "[{b}, {c}, {s}, {s}] pool {:.1}->{:.1} MiB",
            before.reserved_bytes as f64 / 1048576.0,
            after.reserved_bytes as f64 / 1048576.0
        );
        let r = images_row(gpu, name, shape, b, ms);
        on_result(&r);
        out.push(r);
    }
    Ok(out)
}

/// CPU time this thread has run, in ns (Linux: the first field of
/// /proc/thread-self/schedstat); None elsewhere. Read from the file rather
/// than through libc so that benches/before_after.sh can build this harness
/// against older commits, whose dependencies it cannot change.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// A step's medians over `runs` (after two warm-up steps): wall time, and the
/// CPU time of this thread (recording and submitting, not waiting). With an
/// optional kernel-by-kernel profile of one more step.
pub fn time_steps(
    gpu: &Gpu,
    opts: &BenchOptions,
    name: &str,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(f64, Option<f64>)> {
    step()?;
    step()?;
    gpu.sync()?;
    let mut times = Vec::new();
    let mut host = Vec::new();
    for _ in 0..opts.runs.max(1) {
        let t0 = Instant::now();
        let c0 = thread_cpu_ns();
        step()?;
        gpu.sync()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
            host.push(b.saturating_sub(a) as f64 / 1e6);
        }
    }
    let host = (!host.is_empty()).then(|| median(&mut host));
    if opts.profile {
        if gpu.profile_begin()? {
            step()?;
            // gpu::timing: wall clock per launch on CPU adapters.
            let wall = gpu.class() == crate::gpu::AdapterClass::Cpu || !gpu.has_timestamps();
            let clock = if wall {
                "wall clock, each launch alone"
            } else {
                "timestamps"
            };
            print_profile(name, &gpu.profile_end()?, clock);
        } else {
            println!("  {name}: no per-kernel times: the adapter has no timestamp queries");
        }
    }
    Ok((median(&mut times), host))
}

/// A row in images/s from `time_steps`' medians.
pub fn images_row(
    gpu: &Gpu,
    name: String,
    shape: String,
    images: usize,
    (ms, host_ms): (f64, Option<f64>),
) -> BenchResult {
    BenchResult {
        name,
        shape,
        rate: Rate::ImagesPerSec(images as f64 / (ms / 1e3)),
        median_ms: ms,
        clock: "wall",
        adapter: gpu.adapter_name().to_string(),
        host_ms,
    }
}

fn bench_model(
    gpu: &Gpu,
    arch: &str,
    channels: usize,
    seed: u64,
) -> Result<Box<dyn crate::nn::Model>> {
    crate::nn::build_model(
        gpu,
        &crate::nn::ModelSpec {
            arch: arch.into(),
            in_channels: channels,
            num_classes: 100,
            task: crate::tasks::Task::Classify,
        },
        seed,
    )
}

/// Whether `--filter` (if any) selects the case `name`.
pub fn wanted(opts: &BenchOptions, name: &str) -> bool {
    opts.filter
        .as_ref()
        .is_none_or(|f| name.contains(f.as_str()))
}

/// The distillation step of the literature's benchmark: resnet32x4 teacher
/// (eval, no graph) -> resnet8x4 student on 32x32 inputs, batch 64, with the
/// soft, hint and attention paths under the adaptive aggregator, SGD.
pub fn run_kd_step(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    use crate::autograd::{Var, functional as F, no_grad};
    use crate::distill::{AggregateSpec, build_aggregator, build_paths, parse_paths};
    use crate::ops::losses::CeConfig;
    use crate::optim::{Optimizer, Sgd};

    let (teacher_arch, student_arch, b, s) = if opts.quick {
        ("cnn32", "cnn4", 64, 24)
    } else {
        ("resnet32x4", "resnet8x4", 64, 32)
    };
    let name = format!("kd_step_{teacher_arch}_{student_arch}");
    if !wanted(opts, &name) {
        return Ok(Vec::new());
    }
    let teacher = bench_model(gpu, teacher_arch, 3, 1)?;
    let student = bench_model(gpu, student_arch, 3, 2)?;
    let kinds = parse_paths("soft,hint,at")?;
    let paths = build_paths(
        gpu,
        &kinds,
        &student.feature_channels(),
        &teacher.feature_channels(),
        false,
        4.0,
        3,
    )?;
    let mut agg = build_aggregator(&AggregateSpec::Adaptive, &paths, gpu)?;
    let mut params = crate::nn::parameters(student.as_ref());
    let shared = params[0].clone();
    for p in &paths {
        params.extend(crate::nn::parameters(p));
    }
    params.extend(agg.params());
    let mut opt = Sgd::new(params.clone(), 0.9, false, 5e-4)?;
    let x = Var::constant(Tensor::rand_uniform(gpu, &[b, 3, s, s], -1.0, 1.0, 1)?);
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 100).collect();
    let lab = Tensor::from_u32(gpu, &[b], &labels)?;
    let ms = time_steps(gpu, opts, &name, || {
        let t = {
            let _ng = no_grad();
            teacher.forward(&x, false)?
        };
        let so = student.forward(&x, true)?;
        let ce = F::cross_entropy(&so.logits, &lab, CeConfig::default())?;
        let losses: Vec<Var> = paths
            .iter()
            .map(|p| p.loss(&so, &t, None, true))
            .collect::<Result<_>>()?;
        opt.zero_grad();
        agg.backward(&ce, &losses, &params, &shared)?;
        opt.step(0.01)
    })?;
    let r = images_row(
        gpu,
        name,
        format!("[{b}, 3, {s}, {s}] soft+hint+at adaptive"),
        b,
        ms,
    );
    on_result(&r);
    Ok(vec![r])
}

/// Student inference (eval mode, no graph): images/s at batch 1 and 64.
pub fn run_inference(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    // The students a distillation run ships: the benchmarks' resnet8x4,
    // MobileNetV2 and ShuffleNetV2 (the quick run: the demo's cnn4).
    let (archs, s, batches): (&[&str], usize, &[usize]) = if opts.quick {
        (&["cnn4"], 16, &[1, 16])
    } else {
        (&["resnet8x4", "mobilenetv2", "shufflenetv2"], 32, &[1, 64])
    };
    let mut out = Vec::new();
    for &arch in archs {
        out.extend(infer_rows(gpu, opts, (arch, s, batches), on_result)?);
    }
    Ok(out)
}

/// Inference rows of one architecture at each batch size.
fn infer_rows(
    gpu: &Gpu,
    opts: &BenchOptions,
    (arch, s, batches): (&str, usize, &[usize]),
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    use crate::autograd::{Var, no_grad};
    let mut out = Vec::new();
    if !batches
        .iter()
        .any(|b| wanted(opts, &format!("infer_{arch}_b{b}")))
    {
        return Ok(out);
    }
    let model = bench_model(gpu, arch, 3, 1)?;
    for &b in batches {
        let name = format!("infer_{arch}_b{b}");
        if !wanted(opts, &name) {
            continue;
        }
        let x = Var::constant(Tensor::rand_uniform(gpu, &[b, 3, s, s], -1.0, 1.0, 1)?);
        let ms = time_steps(gpu, opts, &name, || {
            let _ng = no_grad();
            model.forward(&x, false).map(|_| ())
        })?;
        let r = images_row(gpu, name, format!("[{b}, 3, {s}, {s}]"), b, ms);
        on_result(&r);
        out.push(r);
    }
    Ok(out)
}

/// Prints GPU time per kernel entry point (summed over launches), largest first.
fn print_profile(case: &str, times: &[crate::gpu::KernelTime], clock: &str) {
    let mut by: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
    for t in times {
        let e = by.entry(t.kernel.as_str()).or_default();
        e.0 += 1;
        e.1 += t.ms;
    }
    let total: f64 = by.values().map(|v| v.1).sum();
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!(
        "  {case}: {} launches, {total:.1} ms of device time ({clock})",
        times.len()
    );
    for (k, (n, ms)) in rows {
        println!(
            "    {k:<40} {n:>5} x {ms:>10.2} ms {:>5.1}%",
            100.0 * ms / total
        );
    }
}

/// Runs the kernel benchmarks; `on_result` sees each result as it is measured.
pub fn run_kernels(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let mut cx = Ctx {
        gpu,
        opts,
        out: Vec::new(),
        on_result,
    };
    let squares: &[usize] = if opts.quick {
        &[64, 256]
    } else {
        &[256, 512, 1024, 2048]
    };
    for &s in squares {
        cx.matmul(&format!("matmul_{s}"), s, s, s, None)?;
    }
    if !opts.quick {
        // The GEMMs of conv layers lowered by im2col, batch 64: (pixels, out ch, in ch x 3 x 3).
        cx.matmul("matmul_conv_32x32_c32", 64 * 32 * 32, 32, 32 * 9, None)?;
        cx.matmul("matmul_conv_16x16_c64", 64 * 16 * 16, 64, 64 * 9, None)?;
        cx.matmul("matmul_conv_8x8_c128", 64 * 8 * 8, 128, 128 * 9, None)?;
        cx.matmul("matmul_fc_512_100", 64, 100, 512, None)?;
        // The other variants at 1024, to show what the per-adapter choice buys
        // (matmul_1024 runs the chosen one: on llvmpipe the texture matmul,
        // not listed here so that benches/before_after.sh can build this
        // harness against commits that predate it).
        for (tag, kernel) in [
            ("cpu_vec4", MatmulKernel::CpuVec4),
            ("cpu_scalar", MatmulKernel::CpuScalar),
            ("tiled", MatmulKernel::Tiled),
            ("cpu_subgroup", MatmulKernel::CpuSubgroup),
        ] {
            let d = crate::ops::matmul::dims(&[1024, 1024], &[1024, 1024], false, false)?;
            if crate::ops::matmul::supports(gpu, kernel, &d, false, false) {
                cx.matmul(
                    &format!("matmul_1024_{tag}"),
                    1024,
                    1024,
                    1024,
                    Some(kernel),
                )?;
            }
        }
    }
    cx.conv_rows()?;
    let sizes: &[(usize, &str)] = if opts.quick {
        &[(1 << 16, "64K")]
    } else {
        &[(1 << 20, "1M"), (1 << 24, "16M")]
    };
    for &(n, tag) in sizes {
        let x = Tensor::rand_uniform(gpu, &[n], -1.0, 1.0, 3)?;
        let name = format!("sum_all_{tag}");
        cx.bandwidth(&name, format!("[{n}]"), 4.0 * n as f64, &mut || {
            crate::ops::sum(&x, None).map(|_| ())
        })?;
        let rows = n / 1024;
        let x2 = x.reshape(&[rows, 1024])?;
        let name = format!("sum_rows_{tag}");
        cx.bandwidth(
            &name,
            format!("[{rows}, 1024] axis 1"),
            4.0 * n as f64,
            &mut || crate::ops::sum(&x2, Some(1)).map(|_| ()),
        )?;
        let name = format!("max_cols_{tag}");
        cx.bandwidth(
            &name,
            format!("[{rows}, 1024] axis 0"),
            4.0 * n as f64,
            &mut || crate::ops::max(&x2, Some(0)).map(|_| ()),
        )?;
        let name = format!("softmax_{tag}");
        cx.bandwidth(
            &name,
            format!("[{rows}, 1024] T=4"),
            8.0 * n as f64,
            &mut || crate::ops::softmax(&x2, 4.0).map(|_| ()),
        )?;
        let y = Tensor::rand_uniform(gpu, &[n], -1.0, 1.0, 4)?;
        let name = format!("add_{tag}");
        cx.bandwidth(
            &name,
            format!("[{n}] + [{n}]"),
            12.0 * n as f64,
            &mut || crate::ops::add(&x, &y).map(|_| ()),
        )?;
    }
    Ok(cx.out)
}
