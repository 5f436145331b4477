//! Line plots: ROC curves and the training loss.

use plotters::prelude::*;

use super::{FONT, TEXT_SIZE, TITLE_SIZE, check_finite, color, drawing, label, padded, simplify};
use crate::report::{ClassRoc, ReportError};

/// Curves drawn by [`roc_svg`]: more would make the legend cover the plot.
pub const MAX_ROC_CURVES: usize = 10;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 520;

/// ROC curves, one colour each, with the chance diagonal and each curve's AUC in the
/// legend. The first MAX_ROC_CURVES curves are drawn.
pub fn roc_svg(curves: &[ClassRoc]) -> Result<String, ReportError> {
    if curves.is_empty() {
        return Err(ReportError("no ROC curve to plot".into()));
    }
    for c in curves {
        check_finite("ROC curve", c.curve.fpr.iter().chain(&c.curve.tpr))?;
        if c.curve.fpr.len() != c.curve.tpr.len() {
            return Err(ReportError("a ROC curve has more x than y values".into()));
        }
    }
    let title = if curves.len() > MAX_ROC_CURVES {
        format!("ROC curves (first {MAX_ROC_CURVES} of {})", curves.len())
    } else {
        "ROC curve".to_string()
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("False positive rate")
            .y_desc("True positive rate")
            .label_style((FONT, TEXT_SIZE))
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                RGBColor(127, 127, 127).into(),
            ))
            .map_err(drawing)?;
        for (i, c) in curves.iter().take(MAX_ROC_CURVES).enumerate() {
            let style = color(i).stroke_width(2);
            let points = c.curve.fpr.iter().copied().zip(c.curve.tpr.iter().copied());
            let points = simplify(points, &(0.0..1.0), &(0.0..1.0));
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(drawing)?
                .label(format!("{} (AUC = {:.3})", label(&c.class), c.auc))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, TEXT_SIZE))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

/// The training loss by round (epoch, boosting round).
pub fn loss_curve_svg(rounds: &[usize], losses: &[f64]) -> Result<String, ReportError> {
    if rounds.len() != losses.len() {
        return Err(ReportError(format!(
            "{} rounds but {} losses",
            rounds.len(),
            losses.len()
        )));
    }
    if rounds.is_empty() {
        return Err(ReportError("no losses to plot".into()));
    }
    check_finite("losses", losses)?;
    let points: Vec<(f64, f64)> = rounds
        .iter()
        .map(|&r| r as f64)
        .zip(losses.iter().copied())
        .collect();
    let (x_lo, x_hi) = bounds(points.iter().map(|p| p.0));
    let (y_lo, y_hi) = bounds(points.iter().map(|p| p.1));
    let (x_range, y_range) = (padded(x_lo, x_hi, 0.02), padded(y_lo.min(0.0), y_hi, 0.05));
    let points = simplify(points, &x_range, &y_range);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Training loss", (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, y_range)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("Round")
            .x_label_formatter(&|x| {
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x}")
                }
            })
            .y_desc("Loss")
            .label_style((FONT, TEXT_SIZE))
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(LineSeries::new(points, color(0).stroke_width(2)))
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

/// Smallest and largest of finite values.
pub(super) fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}
