//! Feature importances as horizontal bars.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    FONT, MAX_LABEL_CHARS, TEXT_SIZE, TITLE_SIZE, check_finite, color, drawing, label, number,
    text_width,
};
use crate::report::ReportError;

/// Bars drawn: the largest by magnitude.
pub const MAX_BARS: usize = 20;
const BAR: i32 = 20;
const STEP: i32 = 28;
const GAP: i32 = 8;
const MARGIN: i32 = 20;
const PLOT_WIDTH: i32 = 420;

/// The `MAX_BARS` importances of largest magnitude, largest first, as horizontal bars from
/// zero (negative ones, e.g. linear coefficients, to the left), with the names on the left
/// and the values on the right. Equal magnitudes keep the input order.
pub fn importances_svg(names: &[String], values: &[f64]) -> Result<String, ReportError> {
    if names.len() != values.len() {
        return Err(ReportError(format!(
            "{} names but {} importances",
            names.len(),
            values.len()
        )));
    }
    if values.is_empty() {
        return Err(ReportError("no importances to plot".into()));
    }
    check_finite("importances", values)?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
    order.truncate(MAX_BARS);
    let shown: Vec<(String, f64)> = order
        .iter()
        .map(|&i| (label(&names[i]), values[i]))
        .collect();

    let longest = shown
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let left = MARGIN + text_width(longest.min(MAX_LABEL_CHARS), TEXT_SIZE) + GAP;
    let value_room = text_width(9, TEXT_SIZE) + GAP;
    let top = MARGIN + TITLE_SIZE as i32 + GAP * 2;
    let width = left + PLOT_WIDTH + value_room + MARGIN;
    let height = top + STEP * shown.len() as i32 + MARGIN;
    let lo = shown.iter().map(|(_, v)| *v).fold(0.0, f64::min);
    let hi = shown.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x_of = |v: f64| left + ((v - lo) / span * f64::from(PLOT_WIDTH)).round() as i32;

    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let text = |size: f64, h: HPos| {
            (FONT, size)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(h, VPos::Center))
        };
        let title = if values.len() > MAX_BARS {
            format!("Feature importance (top {MAX_BARS} of {})", values.len())
        } else {
            "Feature importance".to_string()
        };
        let title_style = (FONT, TITLE_SIZE)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(title, (width / 2, MARGIN), title_style))
            .map_err(drawing)?;
        let zero = x_of(0.0);
        for (i, (name, value)) in shown.iter().enumerate() {
            let y = top + STEP * i as i32 + (STEP - BAR) / 2;
            let end = x_of(*value);
            root.draw(&Rectangle::new(
                [(zero.min(end), y), (zero.max(end), y + BAR)],
                // Negative ones in another colour: a sign is easy to miss from the bar alone.
                color(if *value < 0.0 { 1 } else { 0 }).filled(),
            ))
            .map_err(drawing)?;
            let middle = y + BAR / 2;
            root.draw(&Text::new(
                name.as_str(),
                (left - GAP, middle),
                text(TEXT_SIZE, HPos::Right),
            ))
            .map_err(drawing)?;
            root.draw(&Text::new(
                number(*value),
                (left + PLOT_WIDTH + GAP, middle),
                text(TEXT_SIZE, HPos::Left),
            ))
            .map_err(drawing)?;
        }
        let bottom = top + STEP * shown.len() as i32;
        root.draw(&PathElement::new(vec![(zero, top), (zero, bottom)], BLACK))
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}
