//! Task-specific heads, losses and metrics.

pub mod classification;
