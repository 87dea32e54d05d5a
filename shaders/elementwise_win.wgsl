// Same-shape binary and unary ops reading their inputs through uniform
// windows (windows.wgsl says why) on CPU adapters: a launch binds up to 7
// windows of each input (x in w0-w6, y in w7-w13) and writes the elements
// they cover, so a 16M-float add is 147 launches instead of an invocation
// per 8 floats through the per-lane loop.
//
// Parameters (elementwise.wgsl's EwParams): p.n vec4s in the tensors; p.ndim
// the first vec4 this launch writes (a multiple of WIN); p.shape[k] slot k's
// window start in vec4s. Slot k writes vec4s p.ndim + k * WIN + j (j < WIN,
// the invocation) below p.n; its window starts at or before the first of
// them and ends at or after the last (src/ops/elementwise.rs clamps the
// last window to the buffer's end). Values and operators are binary4's and
// unary4's, so the results are the same bits.

// Slot k's invocation j: (the vec4 it writes, its index in the slot's window).
fn win_at(k: u32, j: u32) -> vec2<u32> {
    let e = p.ndim + k * WIN + j;
    return vec2<u32>(e, e - p.shape[k / 4u][k % 4u]);
}

@compute @workgroup_size(64)
fn binary_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    if SLOTS > 0u {
        let w = win_at(0u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w0[w.y], w7[w.y]);
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w1[w.y], w8[w.y]);
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w2[w.y], w9[w.y]);
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w3[w.y], w10[w.y]);
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w4[w.y], w11[w.y]);
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w5[w.y], w12[w.y]);
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, j);
        if w.x < p.n {
            out4[w.x] = binop4(w6[w.y], w13[w.y]);
        }
    }
}

@compute @workgroup_size(64)
fn unary_win(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    if SLOTS > 0u {
        let w = win_at(0u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w0[w.y]);
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w1[w.y]);
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w2[w.y]);
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w3[w.y]);
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w4[w.y]);
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w5[w.y]);
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, j);
        if w.x < p.n {
            out4[w.x] = unop4(w6[w.y]);
        }
    }
}
