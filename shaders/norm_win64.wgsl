// norm_win.wgsl's per-element kernels writing 64-bit words (wide.wgsl says
// why) where the adapter has SHADER_INT64 and runs are 16 or 4 vec4s: the
// output's per-lane store loop runs once per two floats. A run's vec4s are
// taken in pairs (a run starts on an even vec4, so a pair is one word), and
// interleaved by pairs where runs are (UNIT 2, norm_win.wgsl's norm_run); the
// same arithmetic on the same vec4s as apply_win and backward_input_win, so
// the same bits.

@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;

@compute @workgroup_size(64)
fn apply_win8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let runs = pw.n4 / RUN4;
    if SLOTS > 0u {
        let r = norm_run(0u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w0[r.y + i * GROUP], ch);
                var b = apply_one(w0[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w7[r.y + i * GROUP];
                    b += w7[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 1u {
        let r = norm_run(1u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w1[r.y + i * GROUP], ch);
                var b = apply_one(w1[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w8[r.y + i * GROUP];
                    b += w8[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 2u {
        let r = norm_run(2u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w2[r.y + i * GROUP], ch);
                var b = apply_one(w2[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w9[r.y + i * GROUP];
                    b += w9[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 3u {
        let r = norm_run(3u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w3[r.y + i * GROUP], ch);
                var b = apply_one(w3[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w10[r.y + i * GROUP];
                    b += w10[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 4u {
        let r = norm_run(4u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w4[r.y + i * GROUP], ch);
                var b = apply_one(w4[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w11[r.y + i * GROUP];
                    b += w11[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 5u {
        let r = norm_run(5u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w5[r.y + i * GROUP], ch);
                var b = apply_one(w5[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w12[r.y + i * GROUP];
                    b += w12[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
    if SLOTS > 6u {
        let r = norm_run(6u, j);
        if r.x < runs {
            let ch = apply_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var a = apply_one(w6[r.y + i * GROUP], ch);
                var b = apply_one(w6[r.y + i * GROUP + 1u], ch);
                if RESIDUAL {
                    a += w13[r.y + i * GROUP];
                    b += w13[r.y + i * GROUP + 1u];
                }
                out8[(r.z + i * GROUP) / 2u] = pack_pair(activate4(a), activate4(b));
            }
        }
    }
}

@compute @workgroup_size(64)
fn backward_input_win8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let j = global_id(wid, nwg, li, 64u);
    let runs = pw.n4 / RUN4;
    if SLOTS > 0u {
        let r = norm_run(0u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var g0 = w0[r.y + i * GROUP];
                var g1 = w0[r.y + i * GROUP + 1u];
                if RELU {
                    g0 = unmask4(g0, w4[r.y + i * GROUP]);
                    g1 = unmask4(g1, w4[r.y + i * GROUP + 1u]);
                }
                let d0 = back_one(g0, w8[r.y + i * GROUP], b);
                let d1 = back_one(g1, w8[r.y + i * GROUP + 1u], b);
                out8[(r.z + i * GROUP) / 2u] = pack_pair(d0, d1);
            }
        }
    }
    if SLOTS > 1u {
        let r = norm_run(1u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var g0 = w1[r.y + i * GROUP];
                var g1 = w1[r.y + i * GROUP + 1u];
                if RELU {
                    g0 = unmask4(g0, w5[r.y + i * GROUP]);
                    g1 = unmask4(g1, w5[r.y + i * GROUP + 1u]);
                }
                let d0 = back_one(g0, w9[r.y + i * GROUP], b);
                let d1 = back_one(g1, w9[r.y + i * GROUP + 1u], b);
                out8[(r.z + i * GROUP) / 2u] = pack_pair(d0, d1);
            }
        }
    }
    if SLOTS > 2u {
        let r = norm_run(2u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var g0 = w2[r.y + i * GROUP];
                var g1 = w2[r.y + i * GROUP + 1u];
                if RELU {
                    g0 = unmask4(g0, w6[r.y + i * GROUP]);
                    g1 = unmask4(g1, w6[r.y + i * GROUP + 1u]);
                }
                let d0 = back_one(g0, w10[r.y + i * GROUP], b);
                let d1 = back_one(g1, w10[r.y + i * GROUP + 1u], b);
                out8[(r.z + i * GROUP) / 2u] = pack_pair(d0, d1);
            }
        }
    }
    if SLOTS > 3u {
        let r = norm_run(3u, j);
        if r.x < runs {
            let b = back_channel(r.x);
            for (var i = 0u; i < RUN4; i += 2u) {
                var g0 = w3[r.y + i * GROUP];
                var g1 = w3[r.y + i * GROUP + 1u];
                if RELU {
                    g0 = unmask4(g0, w7[r.y + i * GROUP]);
                    g1 = unmask4(g1, w7[r.y + i * GROUP + 1u]);
                }
                let d0 = back_one(g0, w11[r.y + i * GROUP], b);
                let d1 = back_one(g1, w11[r.y + i * GROUP + 1u], b);
                out8[(r.z + i * GROUP) / 2u] = pack_pair(d0, d1);
            }
        }
    }
}
