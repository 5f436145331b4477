use mlx_plugin_sdk::PluginError;
use serde_json::json;

use super::*;
use crate::table::{Column, Table};

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// x: numeric, color: categorical, y: the target.
fn training() -> Table {
    Table {
        columns: vec![
            Column::numeric("x", vec![Some(1.0), Some(2.0), Some(3.0), Some(6.0)]),
            Column::categorical("color", vec![s("red"), s("blue"), s("red"), s("green")]),
            Column::categorical("y", vec![s("a"), s("b"), s("a"), s("b")]),
        ],
    }
}

fn options(missing: Missing, scale: bool) -> FeatureOptions {
    FeatureOptions { missing, scale }
}

fn fit(table: &Table, o: FeatureOptions) -> Result<FeatureSpec, PluginError> {
    FeatureSpec::fit(table, Some("y"), None, &o)
}

fn declared(err: &PluginError, type_name: &str) {
    assert_eq!(err.type_name, type_name, "{err}");
    assert!(crate::ERRORS.iter().any(|d| d.matches(err)), "{err}");
}

#[test]
fn numeric_and_one_hot_with_sorted_categories() {
    let spec = fit(&training(), FeatureOptions::default()).unwrap();
    assert_eq!(
        spec.output_names(),
        ["x", "color=blue", "color=green", "color=red"]
    );
    assert_eq!(spec.input_names(), ["x", "color"]);
    let m = spec.transform(&training()).unwrap();
    assert_eq!((m.rows, m.cols), (4, 4));
    assert_eq!(m.row(0), [1.0, 0.0, 0.0, 1.0]);
    assert_eq!(m.row(3), [6.0, 0.0, 1.0, 0.0]);
}

#[test]
fn unseen_categories_encode_as_zeros() {
    let spec = fit(&training(), FeatureOptions::default()).unwrap();
    let later = Table {
        columns: vec![
            // Another column order and no target: columns are found by name.
            Column::categorical("color", vec![s("purple"), s("blue")]),
            Column::numeric("x", vec![Some(10.0), Some(0.0)]),
        ],
    };
    let m = spec.transform(&later).unwrap();
    assert_eq!(m.row(0), [10.0, 0.0, 0.0, 0.0]);
    assert_eq!(m.row(1), [0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn scaling_uses_training_mean_and_population_std() {
    let spec = fit(&training(), options(Missing::Refuse, true)).unwrap();
    // x = 1, 2, 3, 6: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5.
    let Encoding::Numeric {
        impute,
        scale: Some(scale),
    } = spec.columns[0].encoding
    else {
        panic!("{:?}", spec.columns[0]);
    };
    assert_eq!((impute, scale.mean), (3.0, 3.0));
    assert!((scale.std - 3.5_f64.sqrt()).abs() < 1e-12);
    let m = spec.transform(&training()).unwrap();
    assert!((m.row(3)[0] - 3.0 / 3.5_f64.sqrt()).abs() < 1e-12);
    // One-hot columns are not scaled.
    assert_eq!(&m.row(3)[1..], [0.0, 1.0, 0.0]);

    let constant = Table {
        columns: vec![Column::numeric("c", vec![Some(5.0), Some(5.0)])],
    };
    let spec = FeatureSpec::fit(&constant, None, None, &options(Missing::Refuse, true)).unwrap();
    assert_eq!(spec.transform(&constant).unwrap().data, [0.0, 0.0]);
}

#[test]
fn refusing_missing_values_names_column_first_row_and_count() {
    let mut table = training();
    table.columns[1] = Column::categorical("color", vec![s("red"), None, s("red"), None]);
    let err = fit(&table, FeatureOptions::default()).unwrap_err();
    declared(&err, "MissingValues");
    assert!(
        err.message.contains("\"color\"") && err.message.contains("data row 2"),
        "{err}"
    );
    assert_eq!(
        err.details,
        Some(json!({"column": "color", "first_row": 2, "count": 2}))
    );

    // A model trained without missing values refuses them later too.
    let spec = fit(&training(), FeatureOptions::default()).unwrap();
    let mut later = training();
    later.columns[0] = Column::numeric("x", vec![Some(1.0), Some(1.0), None, Some(1.0)]);
    let err = spec.transform(&later).unwrap_err();
    declared(&err, "MissingValues");
    assert!(err.message.contains("data row 3"), "{err}");
    // The target may be missing: it is not a feature.
    let mut no_target = training();
    no_target.columns[2] = Column::categorical("y", vec![None; 4]);
    spec.transform(&no_target).unwrap();
}

#[test]
fn imputing_uses_mean_and_most_frequent_value() {
    let table = Table {
        columns: vec![
            Column::numeric("x", vec![Some(1.0), None, Some(3.0)]),
            // A tie between "b" and "a" goes to the smaller, "a".
            Column::categorical("c", vec![s("b"), s("a"), None]),
        ],
    };
    let spec = FeatureSpec::fit(&table, None, None, &options(Missing::Impute, false)).unwrap();
    let m = spec.transform(&table).unwrap();
    assert_eq!(m.row(1), [2.0, 1.0, 0.0]);
    assert_eq!(m.row(2), [3.0, 1.0, 0.0]);

    let empty = Table {
        columns: vec![Column::numeric("x", vec![None, None])],
    };
    let err = FeatureSpec::fit(&empty, None, None, &options(Missing::Impute, false)).unwrap_err();
    declared(&err, "MissingValues");
}

#[test]
fn column_selection_and_its_errors() {
    let table = training();
    let only = ["color".to_string(), "y".into()];
    let spec =
        FeatureSpec::fit(&table, Some("y"), Some(&only), &FeatureOptions::default()).unwrap();
    assert_eq!(spec.input_names(), ["color"]);

    let o = FeatureOptions::default();
    let err = FeatureSpec::fit(&table, Some("nope"), None, &o).unwrap_err();
    declared(&err, "ColumnNotFound");
    let twice = ["x".to_string(), "x".into()];
    declared(
        &FeatureSpec::fit(&table, Some("y"), Some(&twice), &o).unwrap_err(),
        "DuplicateColumn",
    );
    let target_only = ["y".to_string()];
    declared(
        &FeatureSpec::fit(&table, Some("y"), Some(&target_only), &o).unwrap_err(),
        "NoFeatures",
    );
    declared(&fit(&Table::default(), o).unwrap_err(), "NoRows");

    let spec = fit(&table, o).unwrap();
    let without_color = Table {
        columns: vec![table.columns[0].clone()],
    };
    let err = spec.transform(&without_color).unwrap_err();
    declared(&err, "ColumnNotFound");
    assert!(err.message.contains("\"color\""), "{err}");
}

#[test]
fn a_numeric_feature_turned_text_is_a_type_mismatch() {
    let spec = fit(&training(), FeatureOptions::default()).unwrap();
    let mut later = training();
    later.columns[0] = Column::categorical("x", vec![s("1"), s("two"), s("3"), s("4")]);
    let err = spec.transform(&later).unwrap_err();
    declared(&err, "ColumnTypeMismatch");
    assert!(
        err.message.contains("\"two\"") && err.message.contains("data row 2"),
        "{err}"
    );
}

#[test]
fn a_categorical_feature_read_as_numbers_matches_by_text() {
    // Codes "1", "2", "x" in training; a later file with only numbers reads as numeric.
    let table = Table {
        columns: vec![Column::categorical("code", vec![s("1"), s("2.5"), s("x")])],
    };
    let spec = FeatureSpec::fit(&table, None, None, &FeatureOptions::default()).unwrap();
    let later = Table {
        columns: vec![Column::numeric("code", vec![Some(2.5), Some(1.0)])],
    };
    let m = spec.transform(&later).unwrap();
    assert_eq!(spec.output_names(), ["code=1", "code=2.5", "code=x"]);
    assert_eq!(m.data, [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn too_many_categories_hint_at_a_stray_word() {
    let mut values: Vec<Option<String>> =
        (0..=MAX_CATEGORIES).map(|i| Some(i.to_string())).collect();
    values[7] = s("oops");
    let table = Table {
        columns: vec![Column::categorical("id", values)],
    };
    let err = FeatureSpec::fit(&table, None, None, &FeatureOptions::default()).unwrap_err();
    declared(&err, "TooManyCategories");
    assert!(err.message.contains("\"oops\" in data row 8"), "{err}");
}

#[test]
fn infinite_values_are_refused() {
    let table = Table {
        columns: vec![Column::numeric("x", vec![Some(1.0), Some(f64::INFINITY)])],
    };
    let err = FeatureSpec::fit(&table, None, None, &FeatureOptions::default()).unwrap_err();
    declared(&err, "NonFiniteValue");
    let huge = Table {
        columns: vec![Column::numeric("x", vec![Some(f64::MAX), Some(-f64::MAX)])],
    };
    let err = FeatureSpec::fit(&huge, None, None, &FeatureOptions::default()).unwrap_err();
    declared(&err, "NonFiniteValue");
}

#[test]
fn spec_survives_serde_and_refuses_unknown_fields() {
    let spec = fit(&training(), options(Missing::Impute, true)).unwrap();
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<FeatureSpec>(&text).unwrap(), spec);
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        value["options"],
        json!({"missing": "impute", "scale": true})
    );
    assert_eq!(value["columns"][1]["encoding"]["kind"], "one_hot");
    let mut extra = value.clone();
    extra["columns"][0]["encoding"]["typo"] = json!(1);
    assert!(serde_json::from_value::<FeatureSpec>(extra).is_err());
}

#[test]
fn options_are_snake_case_with_defaults_and_no_unknown_fields() {
    let o: FeatureOptions = serde_json::from_value(json!({})).unwrap();
    assert_eq!(o, options(Missing::Refuse, false));
    let o: FeatureOptions = serde_json::from_value(json!({"missing": "impute"})).unwrap();
    assert_eq!(o.missing, Missing::Impute);
    assert!(serde_json::from_value::<FeatureOptions>(json!({"scaled": true})).is_err());
    let schema = serde_json::to_value(schemars::schema_for!(FeatureOptions)).unwrap();
    assert_eq!(schema["additionalProperties"], json!(false));
}
