//! A grid of data set samples, each labelled with its class; for sets with masks
//! (the shapes world, VOC) each sample is followed by its mask (ignored pixels
//! grey), and boxes are drawn (shapes scenes, COCO).

use super::canvas::{BLACK, Canvas, PALETTE, WHITE};
use crate::data::ImageSet;
use crate::error::Result;

/// Draws the first `count` samples of `set`, `cols` per row.
pub fn sample_grid(set: &ImageSet, count: usize, cols: usize) -> Result<Canvas> {
    let count = count.min(set.len()).max(1);
    let cols = cols.clamp(1, count);
    let rows = count.div_ceil(cols);
    let (h, w) = (set.height, set.width);
    // Small images are drawn larger so they can be seen.
    let scale = (96 / h.max(w)).clamp(1, 8);
    let with_mask = set.masks.is_some();
    let tile_w = w * scale * if with_mask { 2 } else { 1 } + if with_mask { 4 } else { 0 };
    let label_h = 16;
    let (cell_w, cell_h) = (tile_w.max(72) + 8, h * scale + label_h + 8);
    let mut cv = Canvas::new(cols * cell_w, rows * cell_h, WHITE);
    for i in 0..count {
        let (x0, y0) = ((i % cols) * cell_w + 4, (i / cols) * cell_h + 4);
        cv.blit_chw(set.image(i), [set.channels, h, w], (x0, y0), scale);
        if let Some(boxes) = set.boxes.as_ref().map(|b| &b[i]) {
            for b in boxes {
                let c = PALETTE[b.class as usize % PALETTE.len()];
                cv.rect(
                    x0 + b.x0 as usize * scale,
                    y0 + b.y0 as usize * scale,
                    (b.x1 - b.x0) as usize * scale,
                    (b.y1 - b.y0) as usize * scale,
                    1,
                    c,
                );
            }
        }
        if let Some(mask) = set.mask(i) {
            let mx = x0 + w * scale + 4;
            for y in 0..h * scale {
                for x in 0..w * scale {
                    let k = mask[(y / scale) * w + x / scale];
                    let c = if k == 0 {
                        BLACK
                    } else if k == crate::data::IGNORE {
                        [200, 200, 200]
                    } else {
                        PALETTE[(k as usize - 1) % PALETTE.len()]
                    };
                    cv.put(mx + x, y0 + y, c);
                }
            }
        }
        let name = &set.classes[set.labels[i] as usize];
        let max_chars = cell_w / 7;
        let shown: String = name.chars().take(max_chars).collect();
        cv.text(&shown, x0, y0 + h * scale + 2, 13, BLACK)?;
    }
    Ok(cv)
}
