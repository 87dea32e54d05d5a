//! Semantic segmentation: per-pixel cross-entropy with an ignore value, and
//! the metrics of the field: mean intersection over union over the classes
//! (background included, ignored pixels excluded) and pixel accuracy.

use crate::data::IGNORE;

/// Mean IoU and pixel accuracy of predicted against true classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegScores {
    pub miou: f32,
    pub pixel_acc: f32,
}

/// The confusion matrix [truth][prediction] over pixels whose truth is not
/// `IGNORE`, k x (k + 1): column k counts predictions outside 0..k (a miss
/// of the true class, a hit of none).
pub fn confusion(pred: &[u32], truth: &[u32], k: usize) -> Vec<u64> {
    let mut m = vec![0u64; k * (k + 1)];
    for (&p, &t) in pred.iter().zip(truth) {
        if t == IGNORE as u32 || t as usize >= k {
            continue;
        }
        m[t as usize * (k + 1) + (p as usize).min(k)] += 1;
    }
    m
}

/// mIoU over the classes that occur in the truth or the predictions (a class
/// absent from both has no IoU), and the fraction of counted pixels right.
pub fn scores(pred: &[u32], truth: &[u32], k: usize) -> SegScores {
    let m = confusion(pred, truth, k);
    let at = |t: usize, p: usize| m[t * (k + 1) + p];
    let (mut sum, mut classes, mut right, mut counted) = (0f64, 0usize, 0u64, 0u64);
    for c in 0..k {
        let tp = at(c, c);
        let truth_c: u64 = (0..=k).map(|j| at(c, j)).sum();
        let pred_c: u64 = (0..k).map(|i| at(i, c)).sum();
        let union = truth_c + pred_c - tp;
        right += tp;
        counted += truth_c;
        if union > 0 {
            sum += tp as f64 / union as f64;
            classes += 1;
        }
    }
    SegScores {
        miou: if classes > 0 {
            (sum / classes as f64) as f32
        } else {
            0.0
        },
        pixel_acc: right as f32 / counted.max(1) as f32,
    }
}
