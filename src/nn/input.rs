//! What a model file carries so that it can be used without its training run:
//! the input it expects (channels, size), the normalisation it was trained
//! with, and its class names. Stored as JSON in the safetensors metadata.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{Error, Result};

/// The metadata key.
pub const KEY: &str = "input";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Per-channel mean and standard deviation of pixels in [0, 1].
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: Vec<String>,
}

impl InputSpec {
    /// The input of a model trained on `set` with normalisation `norm`.
    pub fn new(set: &ImageSet, norm: (Vec<f32>, Vec<f32>)) -> InputSpec {
        InputSpec {
            channels: set.channels,
            height: set.height,
            width: set.width,
            mean: norm.0,
            std: norm.1,
            classes: set.classes.clone(),
        }
    }

    pub fn norm(&self) -> (Vec<f32>, Vec<f32>) {
        (self.mean.clone(), self.std.clone())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// The spec stored in a weights file's metadata; None for files written
    /// before it was stored, or by other tools (PyTorch).
    pub fn from_meta(meta: &BTreeMap<String, String>, path: &Path) -> Result<Option<InputSpec>> {
        let Some(text) = meta.get(KEY) else {
            return Ok(None);
        };
        let spec: InputSpec = serde_json::from_str(text).map_err(|e| {
            Error::weights(path, format!("the `{KEY}` metadata is malformed ({e})"), "")
        })?;
        let n = spec.channels;
        let sane = n >= 1
            && spec.mean.len() == n
            && spec.std.len() == n
            && spec.mean.iter().all(|m| m.is_finite())
            && spec.std.iter().all(|s| s.is_finite() && *s > 0.0)
            && !spec.classes.is_empty();
        if !sane {
            return Err(Error::weights(
                path,
                format!("the `{KEY}` metadata is inconsistent: {text}"),
                "the file was edited or damaged",
            ));
        }
        Ok(Some(spec))
    }

    /// Refuses data the model was not trained for, naming what differs.
    pub fn check_data(&self, set: &ImageSet, path: &Path) -> Result<()> {
        let mut diffs = Vec::new();
        if (self.channels, self.height, self.width) != (set.channels, set.height, set.width) {
            diffs.push(format!(
                "the model takes {}x{}x{} images (C x H x W), the data has {}x{}x{}{}",
                self.channels,
                self.height,
                self.width,
                set.channels,
                set.height,
                set.width,
                if self.channels == set.channels {
                    format!(" (pass --image-size {} for resizable data)", self.height)
                } else {
                    String::new()
                }
            ));
        }
        if self.classes != set.classes {
            diffs.push(format!(
                "the model's classes are [{}], the data's [{}]",
                self.classes.join(", "),
                set.classes.join(", ")
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(Error::weights(
                path,
                format!("does not fit {}: {}", set.name, diffs.join("; ")),
                "use the data set the model was trained on",
            ))
        }
    }
}
