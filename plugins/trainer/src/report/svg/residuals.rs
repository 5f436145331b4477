//! Residuals of a regression against its predictions.

use plotters::prelude::*;

use super::curves::bounds;
use super::{FONT, TEXT_SIZE, TITLE_SIZE, check_finite, color, drawing, padded, thin};
use crate::report::ReportError;

/// Points drawn at most; beyond, evenly spaced examples.
pub const MAX_POINTS: usize = 5000;

/// Residual (true - predicted, as scikit-learn's PredictionErrorDisplay) against the
/// prediction, one point per example, with the zero line.
pub fn residuals_svg(y_true: &[f64], y_pred: &[f64]) -> Result<String, ReportError> {
    if y_true.len() != y_pred.len() {
        return Err(ReportError(format!(
            "{} targets but {} predictions",
            y_true.len(),
            y_pred.len()
        )));
    }
    if y_true.is_empty() {
        return Err(ReportError("no examples to plot".into()));
    }
    check_finite("targets", y_true)?;
    check_finite("predictions", y_pred)?;
    let points: Vec<(f64, f64)> = thin(y_true.len(), MAX_POINTS)
        .into_iter()
        .map(|i| (y_pred[i], y_true[i] - y_pred[i]))
        .collect();
    let (x_lo, x_hi) = bounds(points.iter().map(|p| p.0));
    let (r_lo, r_hi) = bounds(points.iter().map(|p| p.1));
    // Symmetric about zero, so the eye judges bias by the line's position in the plot.
    let r = r_lo.abs().max(r_hi.abs());
    let x_range = padded(x_lo, x_hi, 0.05);
    let title = if points.len() < y_true.len() {
        format!("Residuals ({} of {} examples)", points.len(), y_true.len())
    } else {
        "Residuals".to_string()
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (640, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range.clone(), padded(-r, r, 0.05))
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("Predicted value")
            .y_desc("Residual (true - predicted)")
            .label_style((FONT, TEXT_SIZE))
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(LineSeries::new(
                [(x_range.start, 0.0), (x_range.end, 0.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(drawing)?;
        let dot = color(0).mix(0.6).filled();
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 2, dot)))
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}
