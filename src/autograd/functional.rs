//! Differentiable ops: each runs the forward kernels of `ops` and records a
//! closure with the backward kernels, keeping only what that closure needs.

use super::Var;
use super::trace::{Attr, Operand, Step, node, quiet, traced, v};
use crate::error::{Error, Result};
use crate::ops::{self, conv, layout, losses, norm, pool, resample};
use crate::tensor::Tensor;

/// Sums `g` over the axes along which a tensor of `shape` was broadcast to g's shape.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let rank = g.shape().len();
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - shape.len())
        .chain(shape.iter().copied())
        .collect();
    let mut cur = g.clone();
    for ax in 0..rank {
        if padded[ax] == 1 && cur.shape()[ax] != 1 {
            let mut keep = cur.shape().to_vec();
            keep[ax] = 1;
            cur = ops::sum(&cur, Some(ax))?.reshape(&keep)?;
        }
    }
    cur.reshape(shape)
}

/// `t` broadcast to `shape` (materialised).
pub fn broadcast_to(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape() == shape {
        return Ok(t.clone());
    }
    let ones = crate::ops::full(t.gpu(), shape, 1.0)?;
    ops::mul(&ones, t)
}

pub fn add(a: &Var, b: &Var) -> Result<Var> {
    let y = ops::add(a.value(), b.value())?;
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(traced(
        Var::from_op(
            y,
            "add",
            vec![a.clone(), b.clone()],
            Box::new(move |g| {
                Ok(vec![
                    Some(sum_to_shape(g, &sa)?),
                    Some(sum_to_shape(g, &sb)?),
                ])
            }),
        ),
        || vec![node("Add", vec![v(a), v(b)], vec![])],
    ))
}

pub fn sub(a: &Var, b: &Var) -> Result<Var> {
    let y = ops::sub(a.value(), b.value())?;
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(traced(
        Var::from_op(
            y,
            "sub",
            vec![a.clone(), b.clone()],
            Box::new(move |g| {
                Ok(vec![
                    Some(sum_to_shape(g, &sa)?),
                    Some(sum_to_shape(&ops::scale(g, -1.0)?, &sb)?),
                ])
            }),
        ),
        || vec![node("Sub", vec![v(a), v(b)], vec![])],
    ))
}

pub fn mul(a: &Var, b: &Var) -> Result<Var> {
    let y = ops::mul(a.value(), b.value())?;
    let (av, bv) = (a.value().clone(), b.value().clone());
    let (na, nb) = (a.requires_grad(), b.requires_grad());
    Ok(traced(
        Var::from_op(
            y,
            "mul",
            vec![a.clone(), b.clone()],
            Box::new(move |g| {
                let ga = if na {
                    Some(sum_to_shape(&ops::mul(g, &bv)?, av.shape())?)
                } else {
                    None
                };
                let gb = if nb {
                    Some(sum_to_shape(&ops::mul(g, &av)?, bv.shape())?)
                } else {
                    None
                };
                Ok(vec![ga, gb])
            }),
        ),
        || vec![node("Mul", vec![v(a), v(b)], vec![])],
    ))
}

/// alpha * x + beta.
pub fn affine(x: &Var, alpha: f32, beta: f32) -> Result<Var> {
    let y = ops::elementwise::unary(x.value(), ops::UnaryOp::Affine { alpha, beta })?;
    Ok(traced(
        Var::from_op(
            y,
            "affine",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(ops::scale(g, alpha)?)])),
        ),
        || {
            vec![
                node("Mul", vec![v(x), Operand::Floats(vec![alpha])], vec![]),
                node(
                    "Add",
                    vec![Operand::Prev, Operand::Floats(vec![beta])],
                    vec![],
                ),
            ]
        },
    ))
}

pub fn scale(x: &Var, s: f32) -> Result<Var> {
    affine(x, s, 0.0)
}

pub fn relu(x: &Var) -> Result<Var> {
    let y = ops::relu(x.value())?;
    let yc = y.clone();
    Ok(traced(
        Var::from_op(
            y,
            "relu",
            vec![x.clone()],
            Box::new(move |g| {
                Ok(vec![Some(ops::elementwise::binary(
                    g,
                    &yc,
                    ops::BinaryOp::ReluMask,
                )?)])
            }),
        ),
        || vec![node("Relu", vec![v(x)], vec![])],
    ))
}

pub fn exp(x: &Var) -> Result<Var> {
    let y = ops::exp(x.value())?;
    let yc = y.clone();
    Ok(Var::from_op(
        y,
        "exp",
        vec![x.clone()],
        Box::new(move |g| Ok(vec![Some(ops::mul(g, &yc)?)])),
    ))
}

pub fn reshape(x: &Var, shape: &[usize]) -> Result<Var> {
    if x.shape() == shape {
        return Ok(x.clone());
    }
    let y = x.value().reshape(shape)?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "reshape",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(g.reshape(&s)?)])),
        ),
        || reshape_steps(x, shape),
    ))
}

/// [N, ...] -> [N, rest].
pub fn flatten(x: &Var) -> Result<Var> {
    let n = x.shape().first().copied().unwrap_or(1);
    let rest = x.value().numel() / n.max(1);
    reshape(x, &[n, rest])
}

/// Sum of all elements (shape []).
pub fn sum(x: &Var) -> Result<Var> {
    let y = ops::sum(x.value(), None)?;
    let s = x.shape().to_vec();
    Ok(Var::from_op(
        y,
        "sum",
        vec![x.clone()],
        Box::new(move |g| Ok(vec![Some(broadcast_to(&g.reshape(&[1])?, &s)?)])),
    ))
}

/// Mean of all elements (shape []).
pub fn mean(x: &Var) -> Result<Var> {
    let n = x.value().numel() as f32;
    scale(&sum(x)?, 1.0 / n)
}

/// op(a) @ op(b), 2D or batched (see ops::matmul).
pub fn matmul(a: &Var, b: &Var, ta: bool, tb: bool) -> Result<Var> {
    let y = ops::matmul_t(a.value(), b.value(), ta, tb)?;
    let (av, bv) = (a.value().clone(), b.value().clone());
    let (na, nb) = (a.requires_grad(), b.requires_grad());
    Ok(traced(
        Var::from_op(
            y,
            "matmul",
            vec![a.clone(), b.clone()],
            Box::new(move |g| {
                // C = A B: dA = G B^T, dB = A^T G; transposes swap the roles.
                let ga = if na {
                    let d = if ta {
                        ops::matmul_t(&bv, g, tb, true)?
                    } else {
                        ops::matmul_t(g, &bv, false, !tb)?
                    };
                    Some(sum_batch(d, av.shape())?)
                } else {
                    None
                };
                let gb = if nb {
                    let d = if tb {
                        ops::matmul_t(g, &av, true, ta)?
                    } else {
                        ops::matmul_t(&av, g, !ta, false)?
                    };
                    Some(sum_batch(d, bv.shape())?)
                } else {
                    None
                };
                Ok(vec![ga, gb])
            }),
        ),
        || match (a.shape().len(), b.shape().len(), ta || tb) {
            (2, 2, _) => vec![node(
                "Gemm",
                vec![v(a), v(b)],
                vec![
                    ("transA", Attr::Int(ta as i64)),
                    ("transB", Attr::Int(tb as i64)),
                ],
            )],
            (_, _, false) => vec![node("MatMul", vec![v(a), v(b)], vec![])],
            _ => vec![node("!batched matmul with transposes", vec![], vec![])],
        },
    ))
}

/// A batched gradient of a 2D operand sums over the batch.
fn sum_batch(d: Tensor, shape: &[usize]) -> Result<Tensor> {
    if d.shape().len() == 3 && shape.len() == 2 {
        ops::sum(&d, Some(0))
    } else {
        Ok(d)
    }
}

/// y = x @ w^T + b, with w [out, in] as PyTorch's Linear.
pub fn linear(x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
    let y = quiet(|| {
        let y = matmul(x, w, false, true)?;
        match b {
            Some(b) => add(&y, b),
            None => Ok(y),
        }
    })?;
    Ok(traced(y, || {
        let bias = b.map_or(Operand::Absent, v);
        vec![node(
            "Gemm",
            vec![v(x), v(w), bias],
            vec![("transB", Attr::Int(1))],
        )]
    }))
}

pub fn conv2d(x: &Var, w: &Var, b: Option<&Var>, cfg: conv::Conv2dConfig) -> Result<Var> {
    let geom = conv::ConvGeom::new(x.shape(), w.shape(), cfg)?;
    let y = conv::conv2d(x.value(), w.value(), None, cfg)?;
    let (xv, wv) = (x.value().clone(), w.value().clone());
    let (nx, nw) = (x.requires_grad(), w.requires_grad());
    let y = Var::from_op(
        y,
        "conv2d",
        vec![x.clone(), w.clone()],
        Box::new(move |g| {
            let gx = if nx {
                Some(conv::conv2d_backward_input(g, &wv, &geom)?)
            } else {
                None
            };
            let gw = if nw {
                Some(conv::conv2d_backward_weight(g, &xv, &geom)?)
            } else {
                None
            };
            Ok(vec![gx, gw])
        }),
    );
    let y = quiet(|| match b {
        Some(b) => add(&y, &reshape(b, &[geom.oc, 1, 1])?),
        None => Ok(y),
    })?;
    Ok(traced(y, || vec![conv_node(x, w, b, cfg)]))
}

/// The traced Conv node of a convolution.
fn conv_node(x: &Var, w: &Var, b: Option<&Var>, cfg: conv::Conv2dConfig) -> Step {
    let bias = b.map_or(Operand::Absent, v);
    let pair = |p: (usize, usize)| Attr::Ints(vec![p.0 as i64, p.1 as i64]);
    let (ph, pw) = (cfg.padding.0 as i64, cfg.padding.1 as i64);
    node(
        "Conv",
        vec![v(x), v(w), bias],
        vec![
            ("strides", pair(cfg.stride)),
            ("pads", Attr::Ints(vec![ph, pw, ph, pw])),
            ("dilations", pair(cfg.dilation)),
            ("group", Attr::Int(cfg.groups as i64)),
        ],
    )
}

/// Batch norm with its running statistics after y = conv(x, w), then `post`
/// (ReLU, or the residual's add and ReLU), as one op where the implicit GEMM
/// runs the convolution (`ops::conv::conv2d_bn_eval`: the same bits as
/// `conv2d` then `batch_norm*` in eval mode). It has no backward: for
/// forwards that need no gradient (a frozen teacher's, inference); an input
/// that needs one is an error.
pub fn conv2d_bn_eval(
    x: &Var,
    w: &Var,
    cfg: conv::Conv2dConfig,
    (gamma, beta): (&Var, &Var),
    running: (&Tensor, &Tensor),
    eps: f32,
    post: conv::BnPost<&Var>,
) -> Result<Var> {
    if super::needs_grad([x, w, gamma, beta].into_iter().chain(post.residual())) {
        return Err(Error::Config(
            "conv2d_bn_eval has no backward, and an input needs a gradient: \
             run conv2d then batch_norm, or the forward under no_grad"
                .into(),
        ));
    }
    let bn = conv::EvalBn {
        affine: (gamma.value(), beta.value()),
        running,
        eps,
        post: post.map(Var::value),
    };
    let y = conv::conv2d_bn_eval(x.value(), w.value(), cfg, bn)?;
    Ok(traced(Var::constant(y), || {
        let bn_cfg = norm::BnConfig {
            training: false,
            momentum: 0.0,
            eps,
        };
        let mut steps = vec![
            conv_node(x, w, None, cfg),
            bn_node(Operand::Prev, (gamma, beta), running, bn_cfg),
        ];
        if let Some(r) = post.residual() {
            steps.push(node("Add", vec![Operand::Prev, v(r)], vec![]));
        }
        if !matches!(post, conv::BnPost::None) {
            steps.push(node("Relu", vec![Operand::Prev], vec![]));
        }
        steps
    }))
}

pub fn max_pool2d(x: &Var, cfg: pool::Pool2dConfig) -> Result<Var> {
    let (y, idx) = pool::max_pool2d(x.value(), cfg)?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "max_pool2d",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(pool::max_pool2d_backward(g, &idx, &s, cfg)?)])),
        ),
        || vec![node("MaxPool", vec![v(x)], pool_attrs(cfg))],
    ))
}

pub fn avg_pool2d(x: &Var, cfg: pool::Pool2dConfig) -> Result<Var> {
    let y = pool::avg_pool2d(x.value(), cfg)?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "avg_pool2d",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(pool::avg_pool2d_backward(g, &s, cfg)?)])),
        ),
        || {
            let mut a = pool_attrs(cfg);
            a.push(("count_include_pad", Attr::Int(1)));
            vec![node("AveragePool", vec![v(x)], a)]
        },
    ))
}

/// [N, C, H, W] -> [N, C].
pub fn global_avg_pool(x: &Var) -> Result<Var> {
    let y = pool::global_avg_pool(x.value())?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "global_avg_pool",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(pool::global_avg_pool_backward(g, &s)?)])),
        ),
        || {
            vec![
                node("GlobalAveragePool", vec![v(x)], vec![]),
                node("Flatten", vec![Operand::Prev], vec![("axis", Attr::Int(1))]),
            ]
        },
    ))
}

/// Batch norm; the running (mean, var) are updated in place in training.
pub fn batch_norm(
    x: &Var,
    affine: (&Var, &Var),
    running: (&Tensor, &Tensor),
    cfg: norm::BnConfig,
) -> Result<Var> {
    batch_norm_act(x, affine, running, cfg, false)
}

/// relu(batch_norm(x)) as one op: one pass through memory fewer each way,
/// values and gradients bit-identical to the two ops.
pub fn batch_norm_relu(
    x: &Var,
    affine: (&Var, &Var),
    running: (&Tensor, &Tensor),
    cfg: norm::BnConfig,
) -> Result<Var> {
    batch_norm_act(x, affine, running, cfg, true)
}

fn batch_norm_act(
    x: &Var,
    (gamma, beta): (&Var, &Var),
    running: (&Tensor, &Tensor),
    cfg: norm::BnConfig,
    relu: bool,
) -> Result<Var> {
    let fwd = if relu {
        norm::batch_norm_relu
    } else {
        norm::batch_norm
    };
    let (y, saved) = fwd(x.value(), (gamma.value(), beta.value()), running, cfg)?;
    let (xv, gv) = (x.value().clone(), gamma.value().clone());
    Ok(traced(
        Var::from_op(
            y,
            if relu {
                "batch_norm_relu"
            } else {
                "batch_norm"
            },
            vec![x.clone(), gamma.clone(), beta.clone()],
            Box::new(move |g| {
                let (dx, dg, db) = norm::batch_norm_backward(g, &xv, &gv, &saved)?;
                Ok(vec![Some(dx), Some(dg), Some(db)])
            }),
        ),
        || {
            let mut steps = vec![bn_node(v(x), (gamma, beta), running, cfg)];
            if relu {
                steps.push(node("Relu", vec![Operand::Prev], vec![]));
            }
            steps
        },
    ))
}

/// relu(batch_norm(x) + residual) as one op, a residual block's end: two
/// passes through memory fewer than the three ops in the forward, values and
/// gradients bit-identical to them. The backward masks dy once by the
/// output's sign; the masked dy is the residual's gradient and batch norm's dy.
pub fn batch_norm_add_relu(
    x: &Var,
    residual: &Var,
    (gamma, beta): (&Var, &Var),
    running: (&Tensor, &Tensor),
    cfg: norm::BnConfig,
) -> Result<Var> {
    let (y, saved) = norm::batch_norm_add_relu(
        x.value(),
        residual.value(),
        (gamma.value(), beta.value()),
        running,
        cfg,
    )?;
    let (xv, gv, yv) = (x.value().clone(), gamma.value().clone(), y.clone());
    Ok(traced(
        Var::from_op(
            y,
            "batch_norm_add_relu",
            vec![x.clone(), gamma.clone(), beta.clone(), residual.clone()],
            Box::new(move |g| {
                let dz = ops::elementwise::binary(g, &yv, ops::BinaryOp::ReluMask)?;
                let (dx, dg, db) = norm::batch_norm_backward(&dz, &xv, &gv, &saved)?;
                Ok(vec![Some(dx), Some(dg), Some(db), Some(dz)])
            }),
        ),
        || {
            vec![
                bn_node(v(x), (gamma, beta), running, cfg),
                node("Add", vec![Operand::Prev, v(residual)], vec![]),
                node("Relu", vec![Operand::Prev], vec![]),
            ]
        },
    ))
}

/// The traced BatchNormalization node of a batch norm op (eval semantics:
/// the running statistics, as the exported graph runs).
fn bn_node(
    input: Operand,
    (gamma, beta): (&Var, &Var),
    running: (&Tensor, &Tensor),
    cfg: norm::BnConfig,
) -> Step {
    node(
        "BatchNormalization",
        vec![
            input,
            v(gamma),
            v(beta),
            Operand::Buffer(running.0.clone()),
            Operand::Buffer(running.1.clone()),
        ],
        vec![("epsilon", Attr::Float(cfg.eps))],
    )
}

pub fn concat(xs: &[&Var], axis: usize) -> Result<Var> {
    let vals: Vec<&Tensor> = xs.iter().map(|v| v.value()).collect();
    let y = layout::concat(&vals, axis)?;
    let sizes: Vec<usize> = xs.iter().map(|v| v.shape()[axis]).collect();
    Ok(traced(
        Var::from_op(
            y,
            "concat",
            xs.iter().map(|v| (*v).clone()).collect(),
            Box::new(move |g| {
                let mut start = 0;
                let mut out = Vec::new();
                for &len in &sizes {
                    out.push(Some(layout::slice(g, axis, start, len)?));
                    start += len;
                }
                Ok(out)
            }),
        ),
        || {
            vec![node(
                "Concat",
                xs.iter().map(|x| v(x)).collect(),
                vec![("axis", Attr::Int(axis as i64))],
            )]
        },
    ))
}

pub fn upsample(x: &Var, oh: usize, ow: usize, mode: resample::UpsampleMode) -> Result<Var> {
    let y = resample::upsample(x.value(), oh, ow, mode)?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "upsample",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(resample::upsample_backward(g, &s, mode)?)])),
        ),
        || upsample_steps(x, oh, ow, mode),
    ))
}

/// Mean cross-entropy of logits [N, C, ...] against u32 labels [N, ...].
pub fn cross_entropy(logits: &Var, labels: &Tensor, cfg: losses::CeConfig) -> Result<Var> {
    let (loss, saved) = losses::cross_entropy(logits.value(), labels, cfg)?;
    let (lv, lab) = (logits.value().clone(), labels.clone());
    Ok(Var::from_op(
        loss,
        "cross_entropy",
        vec![logits.clone()],
        Box::new(move |g| {
            Ok(vec![Some(losses::cross_entropy_backward(
                g, &lv, &lab, cfg, &saved,
            )?)])
        }),
    ))
}

/// Softmax (or log-softmax) at temperature `t` along the last axis.
pub fn softmax(x: &Var, t: f32, log: bool) -> Result<Var> {
    let y = ops::softmax::softmax_with(x.value(), t, log, None)?;
    let yc = y.clone();
    Ok(traced(
        Var::from_op(
            y,
            if log { "log_softmax" } else { "softmax" },
            vec![x.clone()],
            Box::new(move |g| {
                let s = yc.shape();
                let last = s.len() - 1;
                let mut keep = s.to_vec();
                keep[last] = 1;
                let dx = if log {
                    // dx = (g - softmax * sum(g)) / T
                    let p = ops::exp(&yc)?;
                    let sg = ops::sum(g, Some(last))?.reshape(&keep)?;
                    ops::sub(g, &ops::mul(&p, &sg)?)?
                } else {
                    // dx = y * (g - sum(g * y)) / T
                    let sgy = ops::sum(&ops::mul(g, &yc)?, Some(last))?.reshape(&keep)?;
                    ops::mul(&yc, &ops::sub(g, &sgy)?)?
                };
                Ok(vec![Some(ops::scale(&dx, 1.0 / t)?)])
            }),
        ),
        || {
            let op = if log { "LogSoftmax" } else { "Softmax" };
            let ax = vec![("axis", Attr::Int(-1))];
            if t == 1.0 {
                vec![node(op, vec![v(x)], ax)]
            } else {
                vec![
                    node("Mul", vec![v(x), Operand::Floats(vec![1.0 / t])], vec![]),
                    node(op, vec![Operand::Prev], ax),
                ]
            }
        },
    ))
}

/// Sum along `axis`, keeping it with size 1.
pub fn sum_axis(x: &Var, axis: usize) -> Result<Var> {
    let mut keep = x.shape().to_vec();
    if axis >= keep.len() {
        return Err(Error::shape(
            "sum_axis",
            format!("axis {axis} out of range for {keep:?}"),
        ));
    }
    keep[axis] = 1;
    let y = ops::sum(x.value(), Some(axis))?.reshape(&keep)?;
    let s = x.shape().to_vec();
    Ok(Var::from_op(
        y,
        "sum_axis",
        vec![x.clone()],
        Box::new(move |g| Ok(vec![Some(broadcast_to(g, &s)?)])),
    ))
}

pub fn div(a: &Var, b: &Var) -> Result<Var> {
    let y = ops::div(a.value(), b.value())?;
    let (av, bv, yc) = (a.value().clone(), b.value().clone(), y.clone());
    let (na, nb) = (a.requires_grad(), b.requires_grad());
    Ok(traced(
        Var::from_op(
            y,
            "div",
            vec![a.clone(), b.clone()],
            Box::new(move |g| {
                let gq = ops::div(g, &bv)?;
                let ga = if na {
                    Some(sum_to_shape(&gq, av.shape())?)
                } else {
                    None
                };
                // d(a / b)/db = -(a / b) / b
                let gb = if nb {
                    Some(sum_to_shape(
                        &ops::scale(&ops::mul(&gq, &yc)?, -1.0)?,
                        bv.shape(),
                    )?)
                } else {
                    None
                };
                Ok(vec![ga, gb])
            }),
        ),
        || vec![node("Div", vec![v(a), v(b)], vec![])],
    ))
}

pub fn sqrt(x: &Var) -> Result<Var> {
    let y = ops::elementwise::unary(x.value(), ops::UnaryOp::Sqrt)?;
    let yc = y.clone();
    Ok(Var::from_op(
        y,
        "sqrt",
        vec![x.clone()],
        Box::new(move |g| Ok(vec![Some(ops::scale(&ops::div(g, &yc)?, 0.5)?)])),
    ))
}

/// x / sqrt(sum(x^2) + eps^2) along the last axis (a smooth L2 normalisation;
/// eps = 1e-6 keeps all-zero rows finite).
pub fn normalize_last(x: &Var) -> Result<Var> {
    let last = x
        .shape()
        .len()
        .checked_sub(1)
        .ok_or_else(|| Error::shape("normalize", "needs an axis"))?;
    let sq = mul(x, x)?;
    let norm = sqrt(&affine(&sum_axis(&sq, last)?, 1.0, 1e-12)?)?;
    div(x, &norm)
}

/// mean((a - b)^2) over all elements.
pub fn mse(a: &Var, b: &Var) -> Result<Var> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            "mse",
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    let d = sub(a, b)?;
    mean(&mul(&d, &d)?)
}

/// Soft-target distillation loss T^2 * KL(p_t || p_s), mean over the batch, with
/// the teacher's logits constant (fused kernel, shaders/kd.wgsl).
pub fn soft_target(student: &Var, teacher: &Tensor, t: f32) -> Result<Var> {
    let (loss, dz) = ops::kd::soft_target(student.value(), teacher, t)?;
    Ok(Var::from_op(
        loss,
        "soft_target",
        vec![student.clone()],
        Box::new(move |g| Ok(vec![Some(ops::mul(&dz, &g.reshape(&[1, 1])?)?)])),
    ))
}

/// The soft-target loss per position of dense logits [N, K, ...] (segmentation
/// maps, detection heat-maps), averaged over the positions whose label is not
/// `ignore`; the teacher's logits are constant (shaders/kd.wgsl, dense form).
pub fn soft_target_dense(
    student: &Var,
    teacher: &Tensor,
    labels: &Tensor,
    ignore: u32,
    t: f32,
) -> Result<Var> {
    let (loss, saved) = ops::kd::soft_target_dense(student.value(), teacher, labels, ignore, t)?;
    let rank = student.shape().len();
    Ok(Var::from_op(
        loss,
        "soft_target_dense",
        vec![student.clone()],
        Box::new(move |g| {
            let factor = ops::mul(&g.reshape(&[1])?, &saved.inv_count)?.reshape(&vec![1; rank])?;
            Ok(vec![Some(ops::mul(&saved.dz, &factor)?)])
        }),
    ))
}

/// The penalty-reduced focal loss of heat-map logits against Gaussian targets
/// (ops::detect::focal_loss); the targets are constant.
pub fn focal_loss(logits: &Var, target: &Tensor) -> Result<Var> {
    let (loss, saved) = ops::detect::focal_loss(logits.value(), target)?;
    let rank = logits.shape().len();
    Ok(Var::from_op(
        loss,
        "focal_loss",
        vec![logits.clone()],
        Box::new(move |g| {
            let factor = ops::mul(&g.reshape(&[1])?, &saved.inv_count)?.reshape(&vec![1; rank])?;
            Ok(vec![Some(ops::mul(&saved.dx, &factor)?)])
        }),
    ))
}

/// sum(weight * |pred - target|) with constant target and weights.
pub fn weighted_l1(pred: &Var, target: &Tensor, weight: &Tensor) -> Result<Var> {
    let (loss, dx) = ops::detect::weighted_l1(pred.value(), target, weight)?;
    let rank = pred.shape().len();
    Ok(Var::from_op(
        loss,
        "weighted_l1",
        vec![pred.clone()],
        Box::new(move |g| Ok(vec![Some(ops::mul(&dx, &g.reshape(&vec![1; rank])?)?)])),
    ))
}

/// An activation of `ops::UnaryOp`: relu, clip (ReLU6), leaky relu, sigmoid,
/// hard sigmoid or hard swish; the backward reads the input (the output for
/// relu and sigmoid, whose derivatives are functions of it).
pub fn activation(x: &Var, op: ops::UnaryOp) -> Result<Var> {
    use ops::{BinaryOp as B, UnaryOp as U};
    let (grad_op, of_output) = match op {
        U::Relu => (B::ReluMask, true),
        U::Clip { lo, hi } => (B::ClipGrad { lo, hi }, false),
        U::LeakyRelu { slope } => (B::LeakyReluGrad { slope }, false),
        U::Sigmoid => (B::SigmoidGrad, true),
        U::HardSigmoid { alpha, beta } => (B::HardSigmoidGrad { alpha, beta }, false),
        U::HardSwish => (B::HardSwishGrad, false),
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is not an activation (use its own function)"
            )));
        }
    };
    let y = ops::elementwise::unary(x.value(), op)?;
    let saved = if of_output {
        y.clone()
    } else {
        x.value().clone()
    };
    Ok(traced(
        Var::from_op(
            y,
            "activation",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(ops::elementwise::binary(g, &saved, grad_op)?)])),
        ),
        || activation_steps(x, op),
    ))
}

/// Output axis d is input axis perm[d].
pub fn permute(x: &Var, perm: &[usize]) -> Result<Var> {
    let y = layout::permute(x.value(), perm)?;
    let mut inverse = vec![0; perm.len()];
    for (d, &a) in perm.iter().enumerate() {
        inverse[a] = d;
    }
    Ok(traced(
        Var::from_op(
            y,
            "permute",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(layout::permute(g, &inverse)?)])),
        ),
        || {
            vec![node(
                "Transpose",
                vec![v(x)],
                vec![("perm", Attr::Ints(perm.iter().map(|&a| a as i64).collect()))],
            )]
        },
    ))
}

/// Elements [start, start + len) along `axis`; the gradient is zero outside.
pub fn slice(x: &Var, axis: usize, start: usize, len: usize) -> Result<Var> {
    let y = layout::slice(x.value(), axis, start, len)?;
    let s = x.shape().to_vec();
    Ok(traced(
        Var::from_op(
            y,
            "slice",
            vec![x.clone()],
            Box::new(move |g| Ok(vec![Some(embed(g, &s, axis, start, 0.0)?)])),
        ),
        || {
            vec![node(
                "Slice",
                vec![
                    v(x),
                    Operand::Ints(vec![start as i64]),
                    Operand::Ints(vec![(start + len) as i64]),
                    Operand::Ints(vec![axis as i64]),
                ],
                vec![],
            )]
        },
    ))
}

/// `t` placed at `start` along `axis` of a tensor of `shape` filled with `value`.
fn embed(t: &Tensor, shape: &[usize], axis: usize, start: usize, value: f32) -> Result<Tensor> {
    let len = t.shape()[axis];
    let mut parts = Vec::new();
    let piece = |n: usize| -> Result<Option<Tensor>> {
        if n == 0 {
            return Ok(None);
        }
        let mut s = shape.to_vec();
        s[axis] = n;
        Ok(Some(ops::full(t.gpu(), &s, value)?))
    };
    let before = piece(start)?;
    let after = piece(shape[axis] - start - len)?;
    parts.extend(before);
    parts.push(t.clone());
    parts.extend(after);
    let refs: Vec<&Tensor> = parts.iter().collect();
    layout::concat(&refs, axis)
}

/// Pads the last two axes of [N, C, H, W] by (top, bottom, left, right) with
/// `value` (ONNX's asymmetric and SAME padding; -inf before a max pool).
pub fn pad2d(x: &Var, pads: [usize; 4], value: f32) -> Result<Var> {
    let [top, bottom, left, right] = pads;
    let s = x.shape().to_vec();
    if s.len() != 4 {
        return Err(Error::shape(
            "pad2d",
            format!("needs [N, C, H, W], got {s:?}"),
        ));
    }
    if pads == [0; 4] {
        return Ok(x.clone());
    }
    let mut wide = s.clone();
    wide[3] += left + right;
    let y = embed(x.value(), &wide, 3, left, value)?;
    let mut tall = wide.clone();
    tall[2] += top + bottom;
    let y = embed(&y, &tall, 2, top, value)?;
    let (h, w) = (s[2], s[3]);
    Ok(traced(
        Var::from_op(
            y,
            "pad2d",
            vec![x.clone()],
            Box::new(move |g| {
                let g = layout::slice(g, 2, top, h)?;
                Ok(vec![Some(layout::slice(&g, 3, left, w)?)])
            }),
        ),
        || {
            let p = |i: usize| pads[i] as i64;
            vec![node(
                "Pad",
                vec![
                    v(x),
                    Operand::Ints(vec![0, 0, p(0), p(2), 0, 0, p(1), p(3)]),
                    Operand::Floats(vec![value]),
                ],
                vec![("mode", Attr::Str("constant"))],
            )]
        },
    ))
}

// ---- ONNX forms of the ops (see `trace`) -------------------------------------

fn pool_attrs(cfg: pool::Pool2dConfig) -> Vec<(&'static str, Attr)> {
    let pair = |p: (usize, usize)| Attr::Ints(vec![p.0 as i64, p.1 as i64]);
    let (ph, pw) = (cfg.padding.0 as i64, cfg.padding.1 as i64);
    vec![
        ("kernel_shape", pair(cfg.kernel)),
        ("strides", pair(cfg.stride)),
        ("pads", Attr::Ints(vec![ph, pw, ph, pw])),
        ("dilations", pair(cfg.dilation)),
    ]
}

/// Reshape keeps the batch dynamic: a leading axis equal to the input's is
/// written 0 (ONNX: copy the input's axis), any other leading axis -1 (it
/// holds the batch, merged with other axes; the rest are fixed).
fn reshape_steps(x: &Var, shape: &[usize]) -> Vec<super::trace::Step> {
    let mut spec: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    if let (Some(first), Some(&n)) = (spec.first_mut(), x.shape().first()) {
        *first = if *first == n as i64 && n > 0 { 0 } else { -1 };
    }
    vec![node("Reshape", vec![v(x), Operand::Ints(spec)], vec![])]
}

/// Resize with scales (whole factors) so the batch stays dynamic; condenser's
/// nearest is ONNX's asymmetric + floor, its bilinear PyTorch's half-pixel.
fn upsample_steps(
    x: &Var,
    oh: usize,
    ow: usize,
    mode: resample::UpsampleMode,
) -> Vec<super::trace::Step> {
    let s = x.shape();
    let (h, w) = (s[2], s[3]);
    let scales = Operand::Floats(vec![1.0, 1.0, oh as f32 / h as f32, ow as f32 / w as f32]);
    let attrs = match mode {
        resample::UpsampleMode::Nearest => vec![
            ("mode", Attr::Str("nearest")),
            ("coordinate_transformation_mode", Attr::Str("asymmetric")),
            ("nearest_mode", Attr::Str("floor")),
        ],
        resample::UpsampleMode::Bilinear => vec![
            ("mode", Attr::Str("linear")),
            (
                "coordinate_transformation_mode",
                Attr::Str("pytorch_half_pixel"),
            ),
        ],
    };
    if !(oh.is_multiple_of(h) && ow.is_multiple_of(w)) {
        return vec![node("!resizing by a fractional factor", vec![], vec![])];
    }
    vec![node("Resize", vec![v(x), Operand::Absent, scales], attrs)]
}

fn activation_steps(x: &Var, op: ops::UnaryOp) -> Vec<super::trace::Step> {
    use ops::UnaryOp as U;
    let one = |name: &'static str, attrs| vec![node(name, vec![v(x)], attrs)];
    match op {
        U::Relu => one("Relu", vec![]),
        U::Sigmoid => one("Sigmoid", vec![]),
        U::HardSwish => one("HardSwish", vec![]),
        U::LeakyRelu { slope } => one("LeakyRelu", vec![("alpha", Attr::Float(slope))]),
        U::HardSigmoid { alpha, beta } => one(
            "HardSigmoid",
            vec![("alpha", Attr::Float(alpha)), ("beta", Attr::Float(beta))],
        ),
        U::Clip { lo, hi } => vec![node(
            "Clip",
            vec![v(x), Operand::Floats(vec![lo]), Operand::Floats(vec![hi])],
            vec![],
        )],
        _ => vec![node("!a non-activation unary op", vec![], vec![])],
    }
}

/// A slice with a step (negative: backwards) along one axis; the gradient
/// goes back to the elements read, zero elsewhere.
pub fn step_slice(x: &Var, s: layout::StepSlice) -> Result<Var> {
    if s.step == 1 {
        return slice(x, s.axis, s.start, s.len);
    }
    let y = layout::step_slice(x.value(), s)?;
    let shape = x.shape().to_vec();
    let y = Var::from_op(
        y,
        "step_slice",
        vec![x.clone()],
        Box::new(move |g| Ok(vec![Some(layout::step_slice_backward(g, &shape, s)?)])),
    );
    Ok(traced(y, || {
        // ONNX's end for a backwards slice that reaches index 0 is "before 0".
        let end = s.start as i64 + s.len as i64 * s.step as i64;
        let end = if end < 0 { i64::MIN } else { end };
        vec![node(
            "Slice",
            vec![
                v(x),
                Operand::Ints(vec![s.start as i64]),
                Operand::Ints(vec![end]),
                Operand::Ints(vec![s.axis as i64]),
                Operand::Ints(vec![s.step as i64]),
            ],
            vec![],
        )]
    }))
}
