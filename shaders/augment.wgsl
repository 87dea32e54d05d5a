// Batch assembly on the GPU from a data set kept on the device as packed bytes:
// gather each sample's image, random-crop with zero padding, flip horizontally,
// scale to [0, 1] and normalise per channel, in one pass.
// Bindings: 0 params, 1 out [B, C, H, W] f32, 2 images (bytes packed 4 per u32,
// little-endian), 3 samples [B][4] u32: (image index, dx, dy, flip).
// `augment_mask` moves the segmentation masks the same way (4 out [B, H, W] u32,
// 5 masks packed like the images); padding becomes 255, the ignore value.

struct AugParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    pad: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    mean: vec4<f32>,
    inv_std: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: AugParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> samples: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> out_mask: array<u32>;
@group(0) @binding(5) var<storage, read> masks: array<u32>;

// The source pixel (x, y) of output (x, y) of sample s, or -1 in the padding.
fn source_of(x: u32, y: u32, s: vec4<u32>) -> vec2<i32> {
    // Crop first, then flip the crop: output column x reads crop column W-1-x.
    var xc = x;
    if s.w != 0u {
        xc = p.width - 1u - x;
    }
    let sx = i32(xc + s.y) - i32(p.pad);
    let sy = i32(y + s.z) - i32(p.pad);
    if sx >= 0 && sy >= 0 && sx < i32(p.width) && sy < i32(p.height) {
        return vec2<i32>(sx, sy);
    }
    return vec2<i32>(-1, -1);
}

// Byte `at` of bytes packed four to a word (little-endian).
fn unpack(word: u32, at: u32) -> u32 {
    return (word >> (8u * (at % 4u))) & 255u;
}

@compute @workgroup_size(256)
fn augment(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    let hw = p.height * p.width;
    let chw = p.channels * hw;
    if i >= p.batch * chw {
        return;
    }
    let x = i % p.width;
    let y = (i / p.width) % p.height;
    let c = (i / hw) % p.channels;
    let b = i / chw;
    let s = samples[b];
    let src = source_of(x, y, s);
    var v = 0.0;
    if src.x >= 0 {
        let at = s.x * chw + c * hw + u32(src.y) * p.width + u32(src.x);
        v = f32(unpack(images[at / 4u], at));
    }
    out[i] = (v * (1.0 / 255.0) - p.mean[c]) * p.inv_std[c];
}

@compute @workgroup_size(256)
fn augment_mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    let hw = p.height * p.width;
    if i >= p.batch * hw {
        return;
    }
    let x = i % p.width;
    let y = (i / p.width) % p.height;
    let s = samples[i / hw];
    let src = source_of(x, y, s);
    var v = 255u;
    if src.x >= 0 {
        let at = s.x * hw + u32(src.y) * p.width + u32(src.x);
        v = unpack(masks[at / 4u], at);
    }
    out_mask[i] = v;
}
