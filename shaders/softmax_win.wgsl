// softmax_rows4 reading x through uniform windows (windows.wgsl says why):
// a launch binds up to 7 (src/ops/softmax.rs says why not 14), each
// holding a group of whole rows
// (src/ops/softmax.rs groups them; a window starts at or before its first
// row, aligned as the adapter requires). Invocation j of slot k runs row
// pw.slot[k].x + j if j < pw.slot[k].y; slot k's window starts at vec4
// pw.slot[k].z of x, so the row's vec4 c is w_k[row * cols4 - start + c].
// Two passes, as softmax_rows8: a running (max, sum of exp) per component
// rescaled by selects, merged across components as softmax_wg merges pairs,
// then exp, scale and write. Each lane starts its walk at its own offset and
// wraps around (rows 4 KiB apart would map every lane's load to one L1 set).
struct SmWinParams {
    cols4: u32,
    inv_t: f32,
    _p0: u32,
    _p1: u32,
    // Per slot: first row, rows, window start (vec4s), unused.
    slot: array<vec4<u32>, 14>,
}

@group(0) @binding(0) var<uniform> pw: SmWinParams;

// Slot k's row for invocation j: (live, the row's first vec4 in the window,
// in the output, the lane's starting column).
struct WinRow {
    live: bool,
    at: u32,
    out: u32,
    start: u32,
}

fn win_row(k: u32, j: u32) -> WinRow {
    let s = pw.slot[k];
    let out = (s.x + j) * pw.cols4;
    return WinRow(j < s.y, out - s.z, out, (j * 2u) % pw.cols4);
}

// Column c of a walk that starts at `start` (c < cols4).
fn col(c: u32, start: u32) -> u32 {
    let i = c + start;
    return select(i, i - pw.cols4, i >= pw.cols4);
}

// Adds a vec4 to the per-component running (max, sum), as online8 does.
fn online4(ms: array<vec4<f32>, 2>, v: vec4<f32>) -> array<vec4<f32>, 2> {
    let m = ms[0];
    let mn = max(m, v);
    // A max still at -inf would make (-inf) - (-inf) = NaN: keep s, add nothing
    // for a masked (-inf) logit.
    let scale = select(exp((m - mn) * pw.inv_t), vec4<f32>(1.0), m == mn);
    let e = select(exp((v - mn) * pw.inv_t), vec4<f32>(0.0), v == vec4<f32>(neg_inf()));
    return array<vec4<f32>, 2>(mn, ms[1] * scale + e);
}

fn online_start() -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(vec4<f32>(neg_inf()), vec4<f32>(0.0));
}

// The row's (max, sum) from the per-component pairs.
fn row_stats(ms: array<vec4<f32>, 2>) -> vec2<f32> {
    let m = ms[0];
    let s = ms[1];
    let a = merge_t(m.x, s.x, m.y, s.y, pw.inv_t);
    let b = merge_t(m.z, s.z, m.w, s.w, pw.inv_t);
    return merge_t(a.x, a.y, b.x, b.y, pw.inv_t);
}

// The output for input v: log-softmax or softmax from the row's (max, sum).
fn emit4(v: vec4<f32>, r: vec2<f32>) -> vec4<f32> {
    let z = (v - r.x) * pw.inv_t;
    if LOG {
        return z - log(r.y);
    }
    return exp(z) * (1.0 / r.y);
}

@compute @workgroup_size(8)
fn softmax_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 8u);
    let n = pw.cols4;
    if SLOTS > 0u {
        let r = win_row(0u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w0[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w0[r.at + i], st);
            }
        }
    }
    if SLOTS > 1u {
        let r = win_row(1u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w1[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w1[r.at + i], st);
            }
        }
    }
    if SLOTS > 2u {
        let r = win_row(2u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w2[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w2[r.at + i], st);
            }
        }
    }
    if SLOTS > 3u {
        let r = win_row(3u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w3[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w3[r.at + i], st);
            }
        }
    }
    if SLOTS > 4u {
        let r = win_row(4u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w4[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w4[r.at + i], st);
            }
        }
    }
    if SLOTS > 5u {
        let r = win_row(5u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w5[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w5[r.at + i], st);
            }
        }
    }
    if SLOTS > 6u {
        let r = win_row(6u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w6[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w6[r.at + i], st);
            }
        }
    }
    if SLOTS > 7u {
        let r = win_row(7u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w7[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w7[r.at + i], st);
            }
        }
    }
    if SLOTS > 8u {
        let r = win_row(8u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w8[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w8[r.at + i], st);
            }
        }
    }
    if SLOTS > 9u {
        let r = win_row(9u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w9[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w9[r.at + i], st);
            }
        }
    }
    if SLOTS > 10u {
        let r = win_row(10u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w10[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w10[r.at + i], st);
            }
        }
    }
    if SLOTS > 11u {
        let r = win_row(11u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w11[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w11[r.at + i], st);
            }
        }
    }
    if SLOTS > 12u {
        let r = win_row(12u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w12[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w12[r.at + i], st);
            }
        }
    }
    if SLOTS > 13u {
        let r = win_row(13u, j);
        if r.live {
            var ms = online_start();
            for (var c = 0u; c < n; c++) {
                ms = online4(ms, w13[r.at + col(c, r.start)]);
            }
            let st = row_stats(ms);
            for (var c = 0u; c < n; c++) {
                let i = col(c, r.start);
                y4[r.out + i] = emit4(w13[r.at + i], st);
            }
        }
    }
}
