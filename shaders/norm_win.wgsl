// Batch norm's training kernels (apply, backward_input, and the per-plane
// sums below) reading their large inputs through uniform windows (windows.wgsl says why) on CPU
// adapters. The tensor, seen as vec4s, is cut into runs of RUN4 vec4s from
// its start: a plane is whole runs (RUN4 is 16, 4 or 1, whichever divides
// pw.plane4 first; src/ops/norm.rs), so a run lies in one channel, whose
// values are read once per run instead of once per 8 values as apply8 reads
// them. Windows are whole runs too. Slot k's window holds the vec4s from
// pw.first + k * WIN on and starts at min(that, pw.last) (the last window of
// a buffer is clamped to end where the buffer ends).
//
// Element by element the arithmetic is apply4's and backward_input4's, in
// their order: the results are the same bits (tests/norm.rs).
//
// apply_win: x in w0-w6, the residual in w7-w13 (RESIDUAL). backward_input_win:
// dy in w0-w3, relu(y) in w4-w7 (RELU), x in w8-w11 (TRAINING).
//
// The per-plane sums (stats_partial_win: x in w0-w13; backward_partial_win:
// dy, relu(y) and x as backward_input_win's) take whole planes instead: a
// plane is pw.plane4 vec4s, a power of two of at most WIN (src/ops/norm.rs),
// so windows are whole planes and one invocation sums one plane, in
// stats_partial4's and backward_partial4's order: the same bits.

struct NormWinParams {
    // vec4s in the tensor, the first this launch reads, the last window's start.
    n4: u32,
    first: u32,
    last: u32,
    // vec4s in a plane, and the channels.
    plane4: u32,
    c: u32,
    // n * hw, backward_input's divisor.
    m: f32,
    _p0: u32,
    _p1: u32,
}

// Binding 0 and 2-15 are the parameters and windows (the output is norm.wgsl's
// out4); norm.wgsl's per-channel bindings collide with the windows, so these
// entry points read them here.
@group(0) @binding(0) var<uniform> pw: NormWinParams;
// (mean, 1/sqrt(var + eps)) per channel, as norm.wgsl's stats.
@group(0) @binding(16) var<storage, read> wstats: array<f32>;
@group(0) @binding(17) var<storage, read> wgamma: array<f32>;
@group(0) @binding(18) var<storage, read> wbeta: array<f32>;
// Per channel (dgamma, dbeta), as norm.wgsl's sums.
@group(0) @binding(19) var<storage, read> wsums: array<f32>;

override RUN4: u32 = 16u;

// Runs are read interleaved in groups of GROUP runs that lie in one plane
// (8, 4, 2 or 1; src/ops/norm.rs), so that lanes llvmpipe runs side by side
// (8 consecutive invocations) read and write neighbouring vec4s: run r's
// i-th vec4 is the group's (i / UNIT) * UNIT * GROUP + (r % GROUP) * UNIT +
// i % UNIT, where UNIT is 2 for norm_win64's pairs (a word's two vec4s stay
// side by side) and 1 here. Read a run apiece, the lanes gathered from 8
// places 256 bytes apart (fourteenth round, as reduce_win.wgsl). Which vec4
// an invocation takes changes, not what it computes: the same bits.
override GROUP: u32 = 1u;
override UNIT: u32 = 1u;

// Slot k's invocation j: (its run, the run's first vec4 in slot k's window,
// in the tensor); for even i, its i-th and (i + 1)-th vec4s are at + i *
// GROUP and + i * GROUP + 1 (UNIT 2), its i-th at + i * GROUP (UNIT 1).
fn norm_run(k: u32, j: u32) -> vec3<u32> {
    let r = pw.first / RUN4 + k * (WIN / RUN4) + j;
    let lane = j % GROUP;
    let o = (r - lane) * RUN4 + lane * UNIT;
    return vec3<u32>(r, o - min(pw.first + k * WIN, pw.last), o);
}

// The channel of run r.
fn run_channel(r: u32) -> u32 {
    return (r * RUN4 / pw.plane4) % pw.c;
}

// apply4 on one vec4: (mean, inv, gamma, beta) of its channel in `ch`.
fn apply_one(v: vec4<f32>, ch: vec4<f32>) -> vec4<f32> {
    return (v - ch.x) * ch.y * ch.z + ch.w;
}

fn apply_channel(r: u32) -> vec4<f32> {
    let c = run_channel(r);
    return vec4<f32>(wstats[2u * c], wstats[2u * c + 1u], wgamma[c], wbeta[c]);
}

// backward_input4's per-channel values: (gamma * inv, mean, inv, sum dy * xhat, sum dy / m).
struct BackChannel {
    k: f32,
    mean: f32,
    inv: f32,
    s0: f32,
    s1: f32,
}

fn back_channel(r: u32) -> BackChannel {
    let c = run_channel(r);
    let inv = wstats[2u * c + 1u];
    var b = BackChannel(wgamma[c] * inv, 0.0, inv, 0.0, 0.0);
    if TRAINING {
        b.mean = wstats[2u * c];
        b.s0 = wsums[2u * c];
        b.s1 = wsums[2u * c + 1u] / pw.m;
    }
    return b;
}

// backward_input4 on one vec4 of dy (already masked) and x.
fn back_one(g: vec4<f32>, xv: vec4<f32>, b: BackChannel) -> vec4<f32> {
    if TRAINING {
        let xh = (xv - b.mean) * b.inv;
        return b.k * (g - b.s1 - xh * b.s0 / pw.m);
    }
    return b.k * g;
}

@compute @workgroup_size(64)
fn apply_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let runs = pw.n4 / RUN4;
    if SLOTS > 0u {
        let r = norm_run(0u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w0[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w7[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 1u {
        let r = norm_run(1u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w1[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w8[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 2u {
        let r = norm_run(2u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w2[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w9[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 3u {
        let r = norm_run(3u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w3[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w10[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 4u {
        let r = norm_run(4u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w4[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w11[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 5u {
        let r = norm_run(5u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w5[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w12[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
    if SLOTS > 6u {
        let r = norm_run(6u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var v = apply_one(w6[r.y + i * GROUP], ch);
                if RESIDUAL {
                    v += w13[r.y + i * GROUP];
                }
                out4[r.z + i * GROUP] = activate4(v);
            }
        }
    }
}

@compute @workgroup_size(64)
fn backward_input_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let runs = pw.n4 / RUN4;
    if SLOTS > 0u {
        let r = norm_run(0u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var g = w0[r.y + i * GROUP];
                if RELU {
                    g = unmask4(g, w4[r.y + i * GROUP]);
                }
                out4[r.z + i * GROUP] = back_one(g, w8[r.y + i * GROUP], b);
            }
        }
    }
    if SLOTS > 1u {
        let r = norm_run(1u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var g = w1[r.y + i * GROUP];
                if RELU {
                    g = unmask4(g, w5[r.y + i * GROUP]);
                }
                out4[r.z + i * GROUP] = back_one(g, w9[r.y + i * GROUP], b);
            }
        }
    }
    if SLOTS > 2u {
        let r = norm_run(2u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var g = w2[r.y + i * GROUP];
                if RELU {
                    g = unmask4(g, w6[r.y + i * GROUP]);
                }
                out4[r.z + i * GROUP] = back_one(g, w10[r.y + i * GROUP], b);
            }
        }
    }
    if SLOTS > 3u {
        let r = norm_run(3u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i++) {
                var g = w3[r.y + i * GROUP];
                if RELU {
                    g = unmask4(g, w7[r.y + i * GROUP]);
                }
                out4[r.z + i * GROUP] = back_one(g, w11[r.y + i * GROUP], b);
            }
        }
    }
}

// Slot k's invocation j: (its plane, the plane's first vec4 in slot k's window).
fn norm_plane(k: u32, j: u32) -> vec2<u32> {
    let q = pw.first / pw.plane4 + k * (WIN / pw.plane4) + j;
    return vec2<u32>(q, q * pw.plane4 - min(pw.first + k * WIN, pw.last));
}

fn sum4(v: vec4<f32>) -> f32 {
    return v.x + v.y + v.z + v.w;
}

@compute @workgroup_size(64)
fn stats_partial_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    // A window holds fewer planes than a workgroup has invocations where
    // planes are long: the rest would reach into the next slot's planes.
    if j >= WIN / pw.plane4 {
        return;
    }
    let planes = pw.n4 / pw.plane4;
    let hw = f32(pw.plane4 * 4u);
    if SLOTS > 0u {
        let q = norm_plane(0u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w0[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w0[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 1u {
        let q = norm_plane(1u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w1[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w1[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 2u {
        let q = norm_plane(2u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w2[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w2[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 3u {
        let q = norm_plane(3u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w3[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w3[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 4u {
        let q = norm_plane(4u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w4[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w4[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 5u {
        let q = norm_plane(5u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w5[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w5[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 6u {
        let q = norm_plane(6u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w6[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w6[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 7u {
        let q = norm_plane(7u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w7[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w7[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 8u {
        let q = norm_plane(8u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w8[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w8[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 9u {
        let q = norm_plane(9u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w9[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w9[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 10u {
        let q = norm_plane(10u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w10[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w10[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 11u {
        let q = norm_plane(11u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w11[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w11[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 12u {
        let q = norm_plane(12u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w12[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w12[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
    if SLOTS > 13u {
        let q = norm_plane(13u, j);
        if q.x < planes {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                s += w13[q.y + i];
            }
            let mean = sum4(s) / hw;
            var m2 = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                let d = w13[q.y + i] - mean;
                m2 += d * d;
            }
            out[2u * q.x] = mean;
            out[2u * q.x + 1u] = sum4(m2);
        }
    }
}

@compute @workgroup_size(64)
fn backward_partial_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    // A window holds fewer planes than a workgroup has invocations where
    // planes are long: the rest would reach into the next slot's planes.
    if j >= WIN / pw.plane4 {
        return;
    }
    let planes = pw.n4 / pw.plane4;
    if SLOTS > 0u {
        let q = norm_plane(0u, j);
        if q.x < planes {
            let c = q.x % pw.c;
            let mean = wstats[2u * c];
            let inv = wstats[2u * c + 1u];
            var sxh = vec4<f32>(0.0);
            var sdy = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                var g = w0[q.y + i];
                if RELU {
                    g = unmask4(g, w4[q.y + i]);
                }
                sxh += g * (w8[q.y + i] - mean) * inv;
                sdy += g;
            }
            out[2u * q.x] = sum4(sxh);
            out[2u * q.x + 1u] = sum4(sdy);
        }
    }
    if SLOTS > 1u {
        let q = norm_plane(1u, j);
        if q.x < planes {
            let c = q.x % pw.c;
            let mean = wstats[2u * c];
            let inv = wstats[2u * c + 1u];
            var sxh = vec4<f32>(0.0);
            var sdy = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                var g = w1[q.y + i];
                if RELU {
                    g = unmask4(g, w5[q.y + i]);
                }
                sxh += g * (w9[q.y + i] - mean) * inv;
                sdy += g;
            }
            out[2u * q.x] = sum4(sxh);
            out[2u * q.x + 1u] = sum4(sdy);
        }
    }
    if SLOTS > 2u {
        let q = norm_plane(2u, j);
        if q.x < planes {
            let c = q.x % pw.c;
            let mean = wstats[2u * c];
            let inv = wstats[2u * c + 1u];
            var sxh = vec4<f32>(0.0);
            var sdy = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                var g = w2[q.y + i];
                if RELU {
                    g = unmask4(g, w6[q.y + i]);
                }
                sxh += g * (w10[q.y + i] - mean) * inv;
                sdy += g;
            }
            out[2u * q.x] = sum4(sxh);
            out[2u * q.x + 1u] = sum4(sdy);
        }
    }
    if SLOTS > 3u {
        let q = norm_plane(3u, j);
        if q.x < planes {
            let c = q.x % pw.c;
            let mean = wstats[2u * c];
            let inv = wstats[2u * c + 1u];
            var sxh = vec4<f32>(0.0);
            var sdy = vec4<f32>(0.0);
            for (var i = 0u; i < pw.plane4; i++) {
                var g = w3[q.y + i];
                if RELU {
                    g = unmask4(g, w7[q.y + i]);
                }
                sxh += g * (w11[q.y + i] - mean) * inv;
                sdy += g;
            }
            out[2u * q.x] = sum4(sxh);
            out[2u * q.x + 1u] = sum4(sdy);
        }
    }
}
