//! SVG plots drawn with plotters' SVG backend, returned as strings.
//!
//! The guest has no fonts (plotters is built without `ttf`), so plotters sizes text with
//! its naive estimate (0.7 em per byte) and leaves the rendering to the SVG viewer through
//! `text-anchor` and `dy`. Where the layout depends on text width (category labels of the
//! confusion matrix and the importance bars), the label areas are sized here from a
//! character count, long labels are cut, and labels are anchored at their inner end so an
//! estimate that is off moves no text onto the plot.
//!
//! Text from data (class and feature names) goes through [`label`]: plotters escapes
//! `<`, `>`, `&` and quotes itself, but XML 1.0 cannot carry most control characters even
//! escaped, so those are replaced. Output is a function of the input only (no clock, no
//! randomness), hence byte-identical for identical input.

mod confusion;
mod curves;
mod importances;
mod residuals;

pub use confusion::confusion_matrix_svg;
pub use curves::{loss_curve_svg, roc_svg};
pub use importances::importances_svg;
pub use residuals::residuals_svg;

use std::fmt::Display;

use plotters::style::RGBColor;

use super::ReportError;

const FONT: &str = "sans-serif";
/// plotters' size of ordinary text; it writes `font-size` as size / 1.24.
const TEXT_SIZE: f64 = 15.0;
const TITLE_SIZE: f64 = 20.0;
/// Longest class or feature name drawn in full; the report's JSON has the full names.
const MAX_LABEL_CHARS: usize = 28;

/// matplotlib's "tab10", in order, so curves have the colours people expect.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Width in pixels of `chars` characters of text of plotters size `size`: a generous
/// average for sans-serif (0.6 em), so that label areas are rather too wide than too narrow.
fn text_width(chars: usize, size: f64) -> i32 {
    (chars as f64 * 0.6 * size / 1.24).ceil() as i32
}

/// `name` as one line of text XML can carry: control characters (and U+FFFE, U+FFFF)
/// become U+FFFD, line breaks and tabs become spaces, and names longer than
/// MAX_LABEL_CHARS are cut with an ellipsis.
fn label(name: &str) -> String {
    let clean = name.chars().map(|c| match c {
        '\t' | '\n' | '\r' => ' ',
        c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
        c => c,
    });
    if name.chars().count() > MAX_LABEL_CHARS {
        clean
            .take(MAX_LABEL_CHARS - 1)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        clean.collect()
    }
}

/// A short, stable rendering of a value for a label.
fn number(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-3..1e5).contains(&magnitude) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// `lo..hi` widened by `pad` of its width on each side, and made nonempty, so points on
/// the bounds stay inside the plot.
fn padded(lo: f64, hi: f64, pad: f64) -> std::ops::Range<f64> {
    let width = hi - lo;
    if width > 0.0 {
        lo - width * pad..hi + width * pad
    } else {
        let half = lo.abs().max(1.0) * 0.5;
        lo - half..hi + half
    }
}

/// Evenly spaced indices, at most `max` of `n`, so that a plot of a million points stays a
/// readable, bounded SVG and the same data always keeps the same points.
fn thin(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        (0..n).collect()
    } else {
        (0..max).map(|i| i * n / max).collect()
    }
}

/// `points` less those that land in the same 1/1000 of the plot as the point kept before
/// them (but the last): a curve of a hundred thousand examples becomes at most a few
/// thousand points and looks the same, where drawing them all would make a megabyte of SVG.
fn simplify(
    points: impl IntoIterator<Item = (f64, f64)>,
    x: &std::ops::Range<f64>,
    y: &std::ops::Range<f64>,
) -> Vec<(f64, f64)> {
    let cell = |p: (f64, f64)| {
        let scale = |v: f64, r: &std::ops::Range<f64>| {
            ((v - r.start) / (r.end - r.start) * 1000.0).floor() as i64
        };
        (scale(p.0, x), scale(p.1, y))
    };
    let mut kept: Vec<(f64, f64)> = Vec::new();
    let mut last = None;
    let mut end = None;
    for p in points {
        let c = cell(p);
        if last != Some(c) {
            kept.push(p);
            last = Some(c);
            end = None;
        } else {
            end = Some(p);
        }
    }
    // The curve still ends where it ends.
    kept.extend(end);
    kept
}

fn drawing(e: impl Display) -> ReportError {
    ReportError(format!("drawing the plot: {e}"))
}

fn check_finite<'a>(
    what: &str,
    values: impl IntoIterator<Item = &'a f64>,
) -> Result<(), ReportError> {
    match values.into_iter().find(|v| !v.is_finite()) {
        Some(v) => Err(ReportError(format!("{what}: value {v} is not finite"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod plot_tests;
#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_single_line_xml_text_and_cut() {
        assert_eq!(label("a\u{1}b\nc\u{FFFF}"), "a\u{FFFD}b c\u{FFFD}");
        assert_eq!(label("<script>"), "<script>");
        let long = "x".repeat(40);
        assert_eq!(label(&long).chars().count(), MAX_LABEL_CHARS);
        assert!(label(&long).ends_with('…'));
        assert_eq!(
            label(&"é".repeat(MAX_LABEL_CHARS)),
            "é".repeat(MAX_LABEL_CHARS)
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.123456), "0.123");
        assert_eq!(number(0.0), "0.000");
        assert_eq!(number(123456.0), "1.23e5");
        assert_eq!(number(-0.0001234), "-1.23e-4");
    }

    #[test]
    fn ranges_are_never_empty() {
        assert_eq!(padded(0.0, 10.0, 0.1), -1.0..11.0);
        assert_eq!(padded(5.0, 5.0, 0.1), 2.5..7.5);
        assert_eq!(padded(0.0, 0.0, 0.1), -0.5..0.5);
        assert_eq!(thin(5, 10), [0, 1, 2, 3, 4]);
        assert_eq!(thin(10, 4), [0, 2, 5, 7]);
    }

    #[test]
    fn curves_keep_one_point_per_visible_cell() {
        let unit = 0.0..1.0;
        let steps: Vec<(f64, f64)> = (0..=100_000)
            .map(|i| (i as f64 / 1e5, (i % 2) as f64 * 1e-6))
            .collect();
        let kept = simplify(steps, &unit, &unit);
        assert!(kept.len() <= 1002, "{}", kept.len());
        assert_eq!(kept.last(), Some(&(1.0, 0.0)));
        assert_eq!(kept[0], (0.0, 0.0));
        let corners = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)];
        assert_eq!(simplify(corners, &unit, &unit), corners);
    }
}
