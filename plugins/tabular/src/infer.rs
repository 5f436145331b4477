//! Typing a column of text cells (CSV): numeric when every present cell is a finite number,
//! categorical otherwise.

use crate::table::ColumnData;

/// Cells that mean "no value", compared after trimming spaces: the spellings pandas, R and
/// SQL exports write most often. Matched exactly (case included), so a category such as "na"
/// or "Null" stays a category.
pub const MISSING_TOKENS: &[&str] = &["", "NA", "N/A", "NaN", "nan", "null", "NULL"];

pub fn is_missing(cell: &str) -> bool {
    MISSING_TOKENS.contains(&cell.trim())
}

/// A cell as a number, when it is a finite one ("inf" is text: it cannot be scaled or
/// averaged, so such a column is better refused as categorical than silently kept).
fn number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Types a column of text cells. Missing cells (see [`MISSING_TOKENS`]) become `None` either
/// way; a column with no present cell at all is numeric (all missing). Two passes over the
/// cells (the iterator is cloned), so callers need not hold them as `String`s.
pub fn infer<'a>(cells: impl Iterator<Item = &'a str> + Clone) -> ColumnData {
    let numbers: Option<Vec<Option<f64>>> = cells
        .clone()
        .map(|c| {
            if is_missing(c) {
                Some(None)
            } else {
                number(c).map(Some)
            }
        })
        .collect();
    match numbers {
        Some(values) => ColumnData::Numeric(values),
        None => ColumnData::Categorical(
            cells
                .map(|c| (!is_missing(c)).then(|| c.to_owned()))
                .collect(),
        ),
    }
}

impl ColumnData {
    /// A column typed from text cells by the rules of CSV files (see [`infer`]).
    pub fn from_text(cells: Vec<String>) -> ColumnData {
        infer(cells.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells<'a>(v: &'a [&'a str]) -> impl Iterator<Item = &'a str> + Clone {
        v.iter().copied()
    }

    #[test]
    fn numbers_with_missing_are_numeric() {
        assert_eq!(
            infer(cells(&[
                "1", " 2.5", "", "NA", "-3e2", "NaN", "null", "N/A"
            ])),
            ColumnData::Numeric(vec![
                Some(1.0),
                Some(2.5),
                None,
                None,
                Some(-300.0),
                None,
                None,
                None
            ])
        );
    }

    #[test]
    fn any_text_or_infinity_makes_it_categorical() {
        assert_eq!(
            infer(cells(&["1", "x", ""])),
            ColumnData::Categorical(vec![Some("1".into()), Some("x".into()), None])
        );
        assert!(!infer(cells(&["1", "inf"])).is_numeric());
        // Case matters: "na" is a value, not a missing marker.
        assert!(!infer(cells(&["1", "na"])).is_numeric());
    }

    #[test]
    fn all_missing_is_numeric() {
        assert_eq!(
            infer(cells(&["", "NA"])),
            ColumnData::Numeric(vec![None, None])
        );
    }
}
