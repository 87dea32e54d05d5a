// The 14 uniform windows a launch may bind (gpu::Binding::window), at
// bindings 2-15 (binding 0: the parameters, 1: the output). A window is 64
// KiB of a pooled buffer, WIN vec4s, bound at a dynamic offset. llvmpipe
// loads a storage buffer at a lane-varying address in a loop over the lanes,
// one element at a time, but gathers a uniform buffer's elements in straight
// line (8 scalar loads per component, no branch); memory-bound kernels on CPU
// adapters read their inputs through these. WGSL cannot index bindings, so
// kernels repeat their body per window slot; SLOTS (set by every launch) is
// how many slots a pipeline computes, and every slot is bound (unused ones
// anywhere).
const WIN: u32 = 4096u;
override SLOTS: u32 = 14u;

@group(0) @binding(2) var<uniform> w0: array<vec4<f32>, WIN>;
@group(0) @binding(3) var<uniform> w1: array<vec4<f32>, WIN>;
@group(0) @binding(4) var<uniform> w2: array<vec4<f32>, WIN>;
@group(0) @binding(5) var<uniform> w3: array<vec4<f32>, WIN>;
@group(0) @binding(6) var<uniform> w4: array<vec4<f32>, WIN>;
@group(0) @binding(7) var<uniform> w5: array<vec4<f32>, WIN>;
@group(0) @binding(8) var<uniform> w6: array<vec4<f32>, WIN>;
@group(0) @binding(9) var<uniform> w7: array<vec4<f32>, WIN>;
@group(0) @binding(10) var<uniform> w8: array<vec4<f32>, WIN>;
@group(0) @binding(11) var<uniform> w9: array<vec4<f32>, WIN>;
@group(0) @binding(12) var<uniform> w10: array<vec4<f32>, WIN>;
@group(0) @binding(13) var<uniform> w11: array<vec4<f32>, WIN>;
@group(0) @binding(14) var<uniform> w12: array<vec4<f32>, WIN>;
@group(0) @binding(15) var<uniform> w13: array<vec4<f32>, WIN>;
