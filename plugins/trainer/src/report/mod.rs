//! Metrics and SVG plots of an evaluation (work in progress).
