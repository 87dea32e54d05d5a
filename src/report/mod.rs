//! Figures and reports: PNG canvases with a small bitmap font, sample grids.

pub mod canvas;
pub mod font;
pub mod grid;
pub mod plot;
pub mod table;
