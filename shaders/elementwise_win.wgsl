// Same-shape binary and unary ops reading their inputs through uniform
// windows (gpu::Binding::window, Gpu::windows_ok) on CPU adapters: llvmpipe
// loads a storage buffer at a lane-varying address in a loop over the lanes,
// one element at a time, but gathers a uniform buffer's elements with one
// instruction per component. A window is 64 KiB of a pooled buffer (WIN
// vec4s) bound at a dynamic offset; a launch binds up to 7 windows of each
// input (x at bindings 2-8, y at 9-15: 15 uniform buffers with the
// parameters) and writes the elements they cover, so a 16M-float add is 147
// launches instead of an invocation per 8 floats through the per-lane loop.
//
// Parameters (elementwise.wgsl's EwParams): p.n vec4s in the tensors; p.ndim
// the first vec4 this launch writes (a multiple of WIN); p.shape[k] slot k's
// window start in vec4s. Slot k writes vec4s p.ndim + k * WIN + j (j < WIN,
// the invocation) below p.n; its window starts at or before the first of
// them and ends at or after the last (src/ops/elementwise.rs clamps the
// last window to the buffer's end). Values and operators are binary4's and
// unary4's, so the results are the same bits.
const WIN: u32 = 4096u;
// Slots this pipeline computes (every slot is bound; unused ones anywhere).
override SLOTS: u32 = 7u;

@group(0) @binding(2) var<uniform> x0: array<vec4<f32>, WIN>;
@group(0) @binding(3) var<uniform> x1: array<vec4<f32>, WIN>;
@group(0) @binding(4) var<uniform> x2: array<vec4<f32>, WIN>;
@group(0) @binding(5) var<uniform> x3: array<vec4<f32>, WIN>;
@group(0) @binding(6) var<uniform> x4: array<vec4<f32>, WIN>;
@group(0) @binding(7) var<uniform> x5: array<vec4<f32>, WIN>;
@group(0) @binding(8) var<uniform> x6: array<vec4<f32>, WIN>;
@group(0) @binding(9) var<uniform> y0: array<vec4<f32>, WIN>;
@group(0) @binding(10) var<uniform> y1: array<vec4<f32>, WIN>;
@group(0) @binding(11) var<uniform> y2: array<vec4<f32>, WIN>;
@group(0) @binding(12) var<uniform> y3: array<vec4<f32>, WIN>;
@group(0) @binding(13) var<uniform> y4: array<vec4<f32>, WIN>;
@group(0) @binding(14) var<uniform> y5: array<vec4<f32>, WIN>;
@group(0) @binding(15) var<uniform> y6: array<vec4<f32>, WIN>;

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
            out4[w.x] = binop4(x0[w.y], y0[w.y]);
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x1[w.y], y1[w.y]);
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x2[w.y], y2[w.y]);
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x3[w.y], y3[w.y]);
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x4[w.y], y4[w.y]);
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x5[w.y], y5[w.y]);
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, j);
        if w.x < p.n {
            out4[w.x] = binop4(x6[w.y], y6[w.y]);
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
            out4[w.x] = unop4(x0[w.y]);
        }
    }
    if SLOTS > 1u {
        let w = win_at(1u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x1[w.y]);
        }
    }
    if SLOTS > 2u {
        let w = win_at(2u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x2[w.y]);
        }
    }
    if SLOTS > 3u {
        let w = win_at(3u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x3[w.y]);
        }
    }
    if SLOTS > 4u {
        let w = win_at(4u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x4[w.y]);
        }
    }
    if SLOTS > 5u {
        let w = win_at(5u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x5[w.y]);
        }
    }
    if SLOTS > 6u {
        let w = win_at(6u, j);
        if w.x < p.n {
            out4[w.x] = unop4(x6[w.y]);
        }
    }
}
