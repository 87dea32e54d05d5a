// A pass of a sum, mean or max over a contiguous axis reading x
// through uniform windows (windows.wgsl says why): up to 14 per launch. The
// tensor, seen as vec4s, is cut into runs of RUN vec4s from its start; rows
// are whole runs (src/ops/reduce.rs: the axis is a multiple of 4 * RUN long)
// and windows are whole runs, so a run lies in one row and one window. Run r
// reduces into y[r]: each row's L / RUN partials, in order, for the passes
// that follow (again through windows while the partials are long enough). Invocation j of slot k reduces run p.first / RUN + k * (WIN /
// RUN) + j; slot k's window starts at min(p.first + k * WIN, p.last) vec4s
// (the last window of a buffer is clamped to end where the buffer ends).
// Two accumulators alternate along the run, as reduce4 keeps them.

struct RedWinParams {
    // vec4s in the tensor, the first this launch reads, the last window's start.
    n4: u32,
    first: u32,
    last: u32,
    // Multiplies a sum where this pass is the last (1/n for a mean of one run).
    scale: f32,
}

@group(0) @binding(0) var<uniform> pw: RedWinParams;

const RUN: u32 = 16u;

// Slot k's invocation j: (its run, the run's first vec4 in slot k's window).
fn run_in(k: u32, j: u32) -> vec2<u32> {
    let r = pw.first / RUN + k * (WIN / RUN) + j;
    return vec2<u32>(r, r * RUN - min(pw.first + k * WIN, pw.last));
}

fn combine(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    if OP == 0u {
        return a + b;
    }
    return max4(a, b);
}

// The run's value from its two accumulators.
fn finish(a0: vec4<f32>, a1: vec4<f32>) -> f32 {
    let v = combine(a0, a1);
    if OP == 0u {
        return ((v.x + v.y) + (v.z + v.w)) * pw.scale;
    }
    return max1(max1(v.x, v.y), max1(v.z, v.w));
}

@compute @workgroup_size(64)
fn reduce_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let runs = pw.n4 / RUN;
    if SLOTS > 0u {
        let r = run_in(0u, j);
        if r.x < runs {
            var a0 = w0[r.y];
            var a1 = w0[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w0[r.y + i]);
                a1 = combine(a1, w0[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 1u {
        let r = run_in(1u, j);
        if r.x < runs {
            var a0 = w1[r.y];
            var a1 = w1[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w1[r.y + i]);
                a1 = combine(a1, w1[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 2u {
        let r = run_in(2u, j);
        if r.x < runs {
            var a0 = w2[r.y];
            var a1 = w2[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w2[r.y + i]);
                a1 = combine(a1, w2[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 3u {
        let r = run_in(3u, j);
        if r.x < runs {
            var a0 = w3[r.y];
            var a1 = w3[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w3[r.y + i]);
                a1 = combine(a1, w3[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 4u {
        let r = run_in(4u, j);
        if r.x < runs {
            var a0 = w4[r.y];
            var a1 = w4[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w4[r.y + i]);
                a1 = combine(a1, w4[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 5u {
        let r = run_in(5u, j);
        if r.x < runs {
            var a0 = w5[r.y];
            var a1 = w5[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w5[r.y + i]);
                a1 = combine(a1, w5[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 6u {
        let r = run_in(6u, j);
        if r.x < runs {
            var a0 = w6[r.y];
            var a1 = w6[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w6[r.y + i]);
                a1 = combine(a1, w6[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 7u {
        let r = run_in(7u, j);
        if r.x < runs {
            var a0 = w7[r.y];
            var a1 = w7[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w7[r.y + i]);
                a1 = combine(a1, w7[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 8u {
        let r = run_in(8u, j);
        if r.x < runs {
            var a0 = w8[r.y];
            var a1 = w8[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w8[r.y + i]);
                a1 = combine(a1, w8[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 9u {
        let r = run_in(9u, j);
        if r.x < runs {
            var a0 = w9[r.y];
            var a1 = w9[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w9[r.y + i]);
                a1 = combine(a1, w9[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 10u {
        let r = run_in(10u, j);
        if r.x < runs {
            var a0 = w10[r.y];
            var a1 = w10[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w10[r.y + i]);
                a1 = combine(a1, w10[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 11u {
        let r = run_in(11u, j);
        if r.x < runs {
            var a0 = w11[r.y];
            var a1 = w11[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w11[r.y + i]);
                a1 = combine(a1, w11[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 12u {
        let r = run_in(12u, j);
        if r.x < runs {
            var a0 = w12[r.y];
            var a1 = w12[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w12[r.y + i]);
                a1 = combine(a1, w12[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 13u {
        let r = run_in(13u, j);
        if r.x < runs {
            var a0 = w13[r.y];
            var a1 = w13[r.y + 1u];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w13[r.y + i]);
                a1 = combine(a1, w13[r.y + i + 1u]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
}
