//! Distillation: paths (one scalar loss each), aggregators (one total loss, or
//! the combined gradient), and the teacher/student trainer.

pub mod aggregate;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod demo;
pub mod paths;
pub mod showcase;
pub mod teacher_cache;
pub mod trainer;

pub use aggregate::{AggregateSpec, Aggregator, build_aggregator};
pub use paths::{Path, PathKind, build_paths, parse_paths};
