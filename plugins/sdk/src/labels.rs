//! Class labels of tabular datasets, ordered the same way by every plugin that lists them
//! (a data source's `classes` and a trainer's confusion matrix must agree).

/// Distinct labels, sorted numerically if every label is a number and lexically otherwise
/// (so "2" comes before "10" in a numeric target column).
pub fn sorted_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut distinct: Vec<&str> = labels.into_iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let numbers: Option<Vec<f64>> = distinct.iter().map(|l| l.trim().parse().ok()).collect();
    if let Some(numbers) = numbers {
        let mut pairs: Vec<(f64, &str)> = numbers.into_iter().zip(distinct).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        return pairs.into_iter().map(|(_, l)| l.to_owned()).collect();
    }
    distinct.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_labels_sort_as_numbers_and_others_lexically() {
        assert_eq!(sorted_labels(["10", "2", "1", "2"]), ["1", "2", "10"]);
        assert_eq!(sorted_labels(["b", "10", "a"]), ["10", "a", "b"]);
        assert_eq!(
            sorted_labels(["benign", "malignant", "benign"]),
            ["benign", "malignant"]
        );
    }
}
