// elementwise_win.wgsl's kernels writing 64-bit words (wide.wgsl says why)
// where the adapter has SHADER_INT64: the output's per-lane store loop runs
// once per two floats instead of once per float. Invocation j of slot k
// takes the slot's vec4s 2j and 2j + 1 (a word's floats 0-3 and 4-7) and
// writes word (p.ndim + k * WIN) / 2 + j; the same operators on the same
// vec4s as binary_win and unary_win, so the same bits. Where the tensor has
// an odd number of vec4s the last word's second half lands in the buffer's
// padding (bindings are rounded up to whole words; src/ops/elementwise.rs).

@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;


@compute @workgroup_size(64)
fn binary_win8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    if SLOTS > 0u {
        let w = win_at(0u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w0[i], w7[i]), binop4(w0[i + 1u], w7[i + 1u]));
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w1[i], w8[i]), binop4(w1[i + 1u], w8[i + 1u]));
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w2[i], w9[i]), binop4(w2[i + 1u], w9[i + 1u]));
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w3[i], w10[i]), binop4(w3[i + 1u], w10[i + 1u]));
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w4[i], w11[i]), binop4(w4[i + 1u], w11[i + 1u]));
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w5[i], w12[i]), binop4(w5[i + 1u], w12[i + 1u]));
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(binop4(w6[i], w13[i]), binop4(w6[i + 1u], w13[i + 1u]));
        }
    }
}

@compute @workgroup_size(64)
fn unary_win8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    if SLOTS > 0u {
        let w = win_at(0u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w0[i]), unop4(w0[i + 1u]));
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w1[i]), unop4(w1[i + 1u]));
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w2[i]), unop4(w2[i + 1u]));
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w3[i]), unop4(w3[i + 1u]));
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w4[i]), unop4(w4[i + 1u]));
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w5[i]), unop4(w5[i + 1u]));
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, 2u * j);
        if w.x < p.n {
            let i = w.y;
            out8[w.x / 2u] = pack_pair(unop4(w6[i]), unop4(w6[i + 1u]));
        }
    }
}
