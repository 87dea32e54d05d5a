// Passes of a sum, mean or max reading x through uniform windows
// (windows.wgsl says why), up to 14 per launch. Slot k's window holds the
// vec4s from pw.first + k * WIN on and starts at min(that, pw.last) (the
// last window of a buffer is clamped to end where the buffer ends).
//
// reduce_win, a contiguous axis: the tensor, seen as vec4s, is cut into runs
// of RUN vec4s from its start; rows are whole runs (src/ops/reduce.rs: the
// axis is a multiple of 4 * RUN long) and windows are whole runs, so a run
// lies in one row and one window. Run r reduces into y[r]: each row's L /
// RUN partials, in order, for the passes that follow (again through windows
// while the partials are long enough). Invocation j of slot k reduces run
// pw.first / RUN + k * (WIN / RUN) + j, its RUN vec4s as GROUP (below) lays
// them out. Two accumulators alternate along the run, as reduce4 keeps them.
//
// reduce_cols_win, a strided axis: x seen as [outer, n, inner], inner =
// 4 * pw.row4 with row4 a power of two below WIN, so a window holds WIN /
// row4 whole k-rows of one o (n is a multiple of that). Invocation j of slot
// k reduces column vec4 j over the window's rows into yw4[window * row4 + j]:
// partials [outer, n / (WIN / row4), inner] for the passes that follow.

struct RedWinParams {
    // vec4s in the tensor, the first this launch reads, the last window's start.
    n4: u32,
    first: u32,
    last: u32,
    // Multiplies a sum where this pass is the last (1/n for a mean of one run).
    scale: f32,
    // vec4s in a k-row (reduce_cols_win; 0 in reduce_win).
    row4: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> pw: RedWinParams;

const RUN: u32 = 16u;

// Runs are read interleaved in groups of GROUP (1 or 8; src/ops/reduce.rs
// picks 8 where rows are whole groups): the group's GROUP * RUN vec4s, and
// run r's i-th is the group's vec4 i * GROUP + r % GROUP, so lanes that
// llvmpipe runs side by side (8 consecutive invocations) read neighbouring
// vec4s. Read a run apiece, they gathered from 8 places 256 bytes apart,
// 14 slots at once, and the partial sums ran at half the speed (fourteenth
// round). A row still splits into whole groups, so each partial stays in
// its row; only which of the row's values each partial sums changes.
override GROUP: u32 = 1u;

// Slot k's invocation j: (its run, the run's first vec4 in slot k's window;
// its i-th at + i * GROUP).
fn run_in(k: u32, j: u32) -> vec2<u32> {
    let r = pw.first / RUN + k * (WIN / RUN) + j;
    let lane = j % GROUP;
    return vec2<u32>(r, (r - lane) * RUN + lane - min(pw.first + k * WIN, pw.last));
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
            var a1 = w0[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w0[r.y + i * GROUP]);
                a1 = combine(a1, w0[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 1u {
        let r = run_in(1u, j);
        if r.x < runs {
            var a0 = w1[r.y];
            var a1 = w1[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w1[r.y + i * GROUP]);
                a1 = combine(a1, w1[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 2u {
        let r = run_in(2u, j);
        if r.x < runs {
            var a0 = w2[r.y];
            var a1 = w2[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w2[r.y + i * GROUP]);
                a1 = combine(a1, w2[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 3u {
        let r = run_in(3u, j);
        if r.x < runs {
            var a0 = w3[r.y];
            var a1 = w3[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w3[r.y + i * GROUP]);
                a1 = combine(a1, w3[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 4u {
        let r = run_in(4u, j);
        if r.x < runs {
            var a0 = w4[r.y];
            var a1 = w4[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w4[r.y + i * GROUP]);
                a1 = combine(a1, w4[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 5u {
        let r = run_in(5u, j);
        if r.x < runs {
            var a0 = w5[r.y];
            var a1 = w5[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w5[r.y + i * GROUP]);
                a1 = combine(a1, w5[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 6u {
        let r = run_in(6u, j);
        if r.x < runs {
            var a0 = w6[r.y];
            var a1 = w6[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w6[r.y + i * GROUP]);
                a1 = combine(a1, w6[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 7u {
        let r = run_in(7u, j);
        if r.x < runs {
            var a0 = w7[r.y];
            var a1 = w7[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w7[r.y + i * GROUP]);
                a1 = combine(a1, w7[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 8u {
        let r = run_in(8u, j);
        if r.x < runs {
            var a0 = w8[r.y];
            var a1 = w8[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w8[r.y + i * GROUP]);
                a1 = combine(a1, w8[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 9u {
        let r = run_in(9u, j);
        if r.x < runs {
            var a0 = w9[r.y];
            var a1 = w9[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w9[r.y + i * GROUP]);
                a1 = combine(a1, w9[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 10u {
        let r = run_in(10u, j);
        if r.x < runs {
            var a0 = w10[r.y];
            var a1 = w10[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w10[r.y + i * GROUP]);
                a1 = combine(a1, w10[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 11u {
        let r = run_in(11u, j);
        if r.x < runs {
            var a0 = w11[r.y];
            var a1 = w11[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w11[r.y + i * GROUP]);
                a1 = combine(a1, w11[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 12u {
        let r = run_in(12u, j);
        if r.x < runs {
            var a0 = w12[r.y];
            var a1 = w12[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w12[r.y + i * GROUP]);
                a1 = combine(a1, w12[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
    if SLOTS > 13u {
        let r = run_in(13u, j);
        if r.x < runs {
            var a0 = w13[r.y];
            var a1 = w13[r.y + GROUP];
            for (var i = 2u; i < RUN; i += 2u) {
                a0 = combine(a0, w13[r.y + i * GROUP]);
                a1 = combine(a1, w13[r.y + (i + 1u) * GROUP]);
            }
            y[r.x] = finish(a0, a1);
        }
    }
}

@group(0) @binding(1) var<storage, read_write> yw4: array<vec4<f32>>;

// Slot k's invocation j: (its window, column j's first vec4 in the slot's
// window, whether the window holds any of the tensor).
fn col_in(k: u32, j: u32) -> vec3<u32> {
    let ws = pw.first + k * WIN;
    return vec3<u32>(ws / WIN, ws - min(ws, pw.last) + j, u32(ws < pw.n4));
}

@compute @workgroup_size(64)
fn reduce_cols_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let rows = WIN / pw.row4;
    let live = j < pw.row4;
    if SLOTS > 0u {
        let c = col_in(0u, j);
        if live && c.z == 1u {
            var a = w0[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w0[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 1u {
        let c = col_in(1u, j);
        if live && c.z == 1u {
            var a = w1[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w1[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 2u {
        let c = col_in(2u, j);
        if live && c.z == 1u {
            var a = w2[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w2[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 3u {
        let c = col_in(3u, j);
        if live && c.z == 1u {
            var a = w3[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w3[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 4u {
        let c = col_in(4u, j);
        if live && c.z == 1u {
            var a = w4[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w4[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 5u {
        let c = col_in(5u, j);
        if live && c.z == 1u {
            var a = w5[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w5[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 6u {
        let c = col_in(6u, j);
        if live && c.z == 1u {
            var a = w6[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w6[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 7u {
        let c = col_in(7u, j);
        if live && c.z == 1u {
            var a = w7[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w7[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 8u {
        let c = col_in(8u, j);
        if live && c.z == 1u {
            var a = w8[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w8[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 9u {
        let c = col_in(9u, j);
        if live && c.z == 1u {
            var a = w9[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w9[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 10u {
        let c = col_in(10u, j);
        if live && c.z == 1u {
            var a = w10[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w10[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 11u {
        let c = col_in(11u, j);
        if live && c.z == 1u {
            var a = w11[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w11[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 12u {
        let c = col_in(12u, j);
        if live && c.z == 1u {
            var a = w12[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w12[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
    if SLOTS > 13u {
        let c = col_in(13u, j);
        if live && c.z == 1u {
            var a = w13[c.y];
            for (var t = 1u; t < rows; t++) {
                a = combine(a, w13[c.y + t * pw.row4]);
            }
            yw4[c.x * pw.row4 + j] = select(a, a * pw.scale, OP == 0u);
        }
    }
}
