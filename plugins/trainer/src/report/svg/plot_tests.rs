//! Each plot is well-formed XML with the expected marks, carries hostile names as text, and
//! is the same bytes for the same input.

use super::test_support::{elements, parse, texts};
use super::*;
use crate::report::{ClassRoc, class_roc_curves};

/// Names a user's file could hold: markup, entities, quotes, a control character.
fn hostile() -> Vec<String> {
    ["<script>alert(1)</script>", "a&b", "\"q'", "x\u{1}y"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// No element came from the data: only plotters' own.
#[track_caller]
fn only_svg_elements(doc: &roxmltree::Document<'_>) {
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        assert!(
            [
                "svg", "rect", "text", "line", "polyline", "polygon", "circle"
            ]
            .contains(&name),
            "unexpected <{name}>"
        );
    }
}

#[test]
fn confusion_matrix_has_a_cell_per_pair_with_its_count() {
    let classes = hostile();
    let matrix: Vec<Vec<u64>> = (0..4)
        .map(|i| (0..4).map(|j| (i * 10 + j) as u64).collect())
        .collect();
    let svg = confusion_matrix_svg(&matrix, &classes).unwrap();
    let doc = parse(&svg);
    only_svg_elements(&doc);
    // The background and 16 cells.
    assert_eq!(elements(&doc, "rect").len(), 1 + 16);
    let texts = texts(&doc);
    for count in matrix.iter().flatten() {
        assert!(texts.contains(&count.to_string()), "no cell with {count}");
    }
    // Each name twice (row and column), as text.
    for name in ["<script>alert(1)</script>", "a&b", "\"q'", "x\u{FFFD}y"] {
        assert_eq!(texts.iter().filter(|t| *t == name).count(), 2, "{name}");
    }
    assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script"));
    assert_eq!(svg, confusion_matrix_svg(&matrix, &classes).unwrap());
}

#[test]
fn confusion_matrix_of_many_classes_and_empty_rows() {
    let classes: Vec<String> = (0..40)
        .map(|i| format!("class number {i} with a long name"))
        .collect();
    let mut matrix = vec![vec![0u64; 40]; 40];
    matrix[3][4] = 7;
    let doc_text = confusion_matrix_svg(&matrix, &classes).unwrap();
    let doc = parse(&doc_text);
    assert_eq!(elements(&doc, "rect").len(), 1 + 40 * 40);
    assert!(texts(&doc).iter().any(|t| t.ends_with('…')));
    assert!(confusion_matrix_svg(&matrix[1..], &classes).is_err());

    // Past COUNTED_CLASSES: no counts, no zero cells, no unreadable labels; still bounded.
    let k = confusion::COUNTED_CLASSES * 3;
    let classes: Vec<String> = (0..k).map(|i| format!("c{i}")).collect();
    let matrix: Vec<Vec<u64>> = (0..k)
        .map(|i| (0..k).map(|j| u64::from(i == j || j == 0)).collect())
        .collect();
    let svg = confusion_matrix_svg(&matrix, &classes).unwrap();
    let doc = parse(&svg);
    assert_eq!(elements(&doc, "rect").len(), 1 + 2 * k - 1);
    assert_eq!(texts(&doc).len(), 3, "title and axis titles only");
    assert!(svg.len() < 100_000, "{} bytes", svg.len());
    assert!(confusion_matrix_svg(&[], &[]).is_err());
}

fn iris_like_curves() -> Vec<ClassRoc> {
    let y = [0, 1, 2, 0, 1, 2, 1, 2];
    let proba = [
        [0.8, 0.1, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.5, 0.4, 0.1],
        [0.1, 0.4, 0.5],
        [0.2, 0.2, 0.6],
        [0.3, 0.6, 0.1],
        [0.3, 0.3, 0.4],
    ];
    let proba: Vec<Vec<f64>> = proba.iter().map(|r| r.to_vec()).collect();
    let mut classes = hostile();
    classes.truncate(3);
    class_roc_curves(&y, &proba, &classes).unwrap()
}

#[test]
fn roc_plot_has_a_line_and_a_legend_entry_per_curve() {
    let curves = iris_like_curves();
    assert_eq!(curves.len(), 3);
    let svg = roc_svg(&curves).unwrap();
    let doc = parse(&svg);
    only_svg_elements(&doc);
    let legend: Vec<String> = texts(&doc)
        .into_iter()
        .filter(|t| t.contains("AUC"))
        .collect();
    assert_eq!(legend.len(), 3, "{legend:?}");
    assert!(
        legend[0].starts_with("<script>alert(1)</script> (AUC = "),
        "{legend:?}"
    );
    // Each curve's line has its points: plotters writes a series as one polyline.
    for c in &curves {
        let n = c.curve.fpr.len();
        let lines = elements(&doc, "polyline");
        assert!(
            lines.iter().any(|l| l
                .attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .count()
                == n),
            "no polyline of {n} points"
        );
    }
    assert_eq!(svg, roc_svg(&curves).unwrap());
    assert!(roc_svg(&[]).is_err());
}

#[test]
fn roc_plot_draws_at_most_ten_curves() {
    let one = iris_like_curves().remove(0);
    let many: Vec<ClassRoc> = (0..13)
        .map(|i| ClassRoc {
            class: format!("c{i}"),
            ..one.clone()
        })
        .collect();
    let doc_text = roc_svg(&many).unwrap();
    let doc = parse(&doc_text);
    let texts = texts(&doc);
    assert_eq!(
        texts.iter().filter(|t| t.contains("AUC")).count(),
        curves::MAX_ROC_CURVES
    );
    assert!(
        texts.iter().any(|t| t == "ROC curves (first 10 of 13)"),
        "{texts:?}"
    );
}

#[test]
fn residuals_plot_has_a_point_per_example() {
    let y_true = [3.0, -0.5, 2.0, 7.0, 4.0, 4.0, 1.0];
    let y_pred = [2.5, 0.0, 2.0, 8.0, 4.5, 3.0, 1.0];
    let svg = residuals_svg(&y_true, &y_pred).unwrap();
    let doc = parse(&svg);
    only_svg_elements(&doc);
    assert_eq!(elements(&doc, "circle").len(), 7);
    assert_eq!(svg, residuals_svg(&y_true, &y_pred).unwrap());
    // A constant prediction with no error still has a range to draw in.
    let flat = residuals_svg(&[1.0; 3], &[1.0; 3]).unwrap();
    assert_eq!(elements(&parse(&flat), "circle").len(), 3);
    assert!(residuals_svg(&[1.0], &[f64::NAN]).is_err());
    assert!(residuals_svg(&[], &[]).is_err());
}

#[test]
fn residuals_plot_thins_large_inputs() {
    let n = residuals::MAX_POINTS * 3;
    let y: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let p: Vec<f64> = (0..n).map(|i| i as f64 + (i % 7) as f64 - 3.0).collect();
    let svg = residuals_svg(&y, &p).unwrap();
    assert_eq!(
        elements(&parse(&svg), "circle").len(),
        residuals::MAX_POINTS
    );
}

#[test]
fn importances_show_the_top_twenty_by_magnitude() {
    let mut names: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
    names[24] = "<script>".to_string();
    // f0..f23 grow with their index; the hostile name has the largest magnitude, negative.
    let mut values: Vec<f64> = (0..25).map(|i| i as f64 * 0.01).collect();
    values[24] = -1.0;
    let svg = importances_svg(&names, &values).unwrap();
    let doc = parse(&svg);
    only_svg_elements(&doc);
    assert_eq!(elements(&doc, "rect").len(), 1 + importances::MAX_BARS);
    let texts = texts(&doc);
    assert_eq!(texts[0], "Feature importance (top 20 of 25)");
    // Names in order of magnitude, the five smallest (f0..f4) left out.
    let shown: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with('f') || t.starts_with('<'))
        .collect();
    assert_eq!(shown[..3], ["<script>", "f23", "f22"]);
    assert_eq!(shown.len(), 20);
    assert!(!shown.contains(&"f4") && shown.contains(&"f5"));
    assert!(texts.contains(&"-1.000".to_string()));
    assert_eq!(svg, importances_svg(&names, &values).unwrap());

    assert!(importances_svg(&names[..1], &values).is_err());
    assert!(importances_svg(&[], &[]).is_err());
    let zeros = importances_svg(&names[..2], &[0.0, 0.0]).unwrap();
    assert_eq!(elements(&parse(&zeros), "rect").len(), 3);
}

#[test]
fn loss_curve_is_one_line_through_every_round() {
    let rounds: Vec<usize> = (1..=30).collect();
    let losses: Vec<f64> = rounds.iter().map(|&r| 1.0 / r as f64).collect();
    let svg = loss_curve_svg(&rounds, &losses).unwrap();
    let doc = parse(&svg);
    only_svg_elements(&doc);
    let lines = elements(&doc, "polyline");
    assert!(lines.iter().any(|l| {
        l.attribute("points")
            .unwrap_or_default()
            .split_whitespace()
            .count()
            == 30
    }));
    assert_eq!(svg, loss_curve_svg(&rounds, &losses).unwrap());
    assert!(loss_curve_svg(&[1], &[f64::INFINITY]).is_err());
    assert!(loss_curve_svg(&[1, 2], &[0.5]).is_err());
    // One round: a degenerate range plotters must still draw.
    assert!(loss_curve_svg(&[1], &[0.5]).is_ok());
}
