//! The confusion matrix as a heatmap with the counts in the cells.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FONT, MAX_LABEL_CHARS, TEXT_SIZE, TITLE_SIZE, drawing, label, text_width};
use crate::report::ReportError;

/// Classes up to which each cell shows its count (and every cell is drawn).
pub const COUNTED_CLASSES: usize = 100;
const GAP: i32 = 8;
const MARGIN: i32 = 20;
/// Darkest cell colour (matplotlib's "Blues" end).
const DARK: (f64, f64, f64) = (8.0, 48.0, 107.0);

/// `matrix[true][predicted]` as an SVG heatmap: rows are true classes, columns predicted
/// ones, each cell showing its count and shaded by its share of the row (the row's recall
/// on the diagonal), so that a rare class's row reads as well as a frequent one's.
pub fn confusion_matrix_svg(
    matrix: &[Vec<u64>],
    classes: &[String],
) -> Result<String, ReportError> {
    let k = classes.len();
    if k == 0 {
        return Err(ReportError("no classes to plot".into()));
    }
    if matrix.len() != k || matrix.iter().any(|row| row.len() != k) {
        return Err(ReportError(format!(
            "the confusion matrix is not {k} x {k} like the classes"
        )));
    }
    // Up to COUNTED_CLASSES every cell is big enough for its count; beyond, cells shrink
    // so the SVG stays a few thousand pixels wide, and only what stays legible is drawn.
    let cell = if k <= COUNTED_CLASSES {
        (480 / k as i32).clamp(24, 64)
    } else {
        (2400 / k as i32).max(4)
    };
    let counted = cell >= 18;
    let names: Vec<String> = if cell >= 10 {
        classes.iter().map(|c| label(c)).collect()
    } else {
        Vec::new()
    };
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let label_room = text_width(longest.min(MAX_LABEL_CHARS), TEXT_SIZE) + GAP;
    let axis_title = TEXT_SIZE as i32 + GAP;
    let (left, top) = (
        MARGIN + axis_title + label_room,
        MARGIN + TITLE_SIZE as i32 + GAP * 2,
    );
    let side = cell * k as i32;
    let width = left + side + MARGIN;
    let height = top + side + label_room + axis_title + MARGIN;

    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let text = |size: f64, h: HPos, v: VPos| {
            (FONT, size).into_font().color(&BLACK).pos(Pos::new(h, v))
        };
        let title = text(TITLE_SIZE, HPos::Center, VPos::Top);
        root.draw(&Text::new("Confusion matrix", (width / 2, MARGIN), title))
            .map_err(drawing)?;
        let centered = text(TEXT_SIZE, HPos::Center, VPos::Center);
        let predicted_y = top + side + label_room + axis_title / 2;
        root.draw(&Text::new(
            "Predicted class",
            (left + side / 2, predicted_y),
            centered.clone(),
        ))
        .map_err(drawing)?;
        let vertical = centered.transform(FontTransform::Rotate270);
        root.draw(&Text::new(
            "True class",
            (MARGIN + axis_title / 2, top + side / 2),
            vertical,
        ))
        .map_err(drawing)?;

        let count_size = (f64::from(cell) * 0.45).min(TEXT_SIZE);
        for (i, row) in matrix.iter().enumerate() {
            let y = top + cell * i as i32;
            let row_total: u64 = row.iter().sum();
            for (j, &count) in row.iter().enumerate() {
                // A white cell on the white background needs a rectangle only to carry
                // its count.
                if count == 0 && !counted {
                    continue;
                }
                let x = left + cell * j as i32;
                let share = if row_total == 0 {
                    0.0
                } else {
                    count as f64 / row_total as f64
                };
                let shade = |dark: f64| (255.0 + (dark - 255.0) * share).round() as u8;
                let fill = RGBColor(shade(DARK.0), shade(DARK.1), shade(DARK.2));
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))
                .map_err(drawing)?;
                if !counted {
                    continue;
                }
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = (FONT, count_size)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    style,
                ))
                .map_err(drawing)?;
            }
        }
        // Anchored at the end next to the matrix: the text grows away from it, into the
        // room sized for the longest name.
        let row_label = text(TEXT_SIZE, HPos::Right, VPos::Center);
        let column_label =
            text(TEXT_SIZE, HPos::Left, VPos::Center).transform(FontTransform::Rotate90);
        for (i, name) in names.iter().enumerate() {
            let middle = cell * i as i32 + cell / 2;
            root.draw(&Text::new(
                name.as_str(),
                (left - GAP, top + middle),
                row_label.clone(),
            ))
            .map_err(drawing)?;
            root.draw(&Text::new(
                name.as_str(),
                (left + middle, top + side + GAP),
                column_label.clone(),
            ))
            .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(out)
}
