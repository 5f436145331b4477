//! Arrow arrays as our cells, type by type. Arrow's general `cast` would do it in one call but
//! links a converter for every pair of arrow types: about 2 MB of every component using this
//! crate, for the handful of types a table column can have.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float16Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};

/// Whether a column of `data_type` reads as numbers (`Some(true)`), as text (`Some(false)`),
/// or not at all.
pub fn is_numeric(data_type: &DataType) -> Option<bool> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
        | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => Some(true),
        Utf8 | LargeUtf8 | Utf8View | Boolean => Some(false),
        Dictionary(_, values) => is_numeric(values),
        _ => None,
    }
}

/// The cells of a numeric array as `f64`; `None` when the array is not of a numeric type.
/// Integers beyond 2^53 and decimals round to the nearest `f64`.
pub fn numbers(array: &dyn Array) -> Option<Vec<Option<f64>>> {
    macro_rules! each {
        ($t:ty, $f:expr) => {
            array
                .as_primitive_opt::<$t>()?
                .iter()
                .map(|x| x.map($f))
                .collect()
        };
    }
    // Decimals are integers scaled by 10^-scale; the scale may be negative.
    let unscale = |scale: i8| 10f64.powi(-i32::from(scale));
    Some(match array.data_type() {
        DataType::Int8 => each!(Int8Type, f64::from),
        DataType::Int16 => each!(Int16Type, f64::from),
        DataType::Int32 => each!(Int32Type, f64::from),
        DataType::Int64 => each!(Int64Type, |v| v as f64),
        DataType::UInt8 => each!(UInt8Type, f64::from),
        DataType::UInt16 => each!(UInt16Type, f64::from),
        DataType::UInt32 => each!(UInt32Type, f64::from),
        DataType::UInt64 => each!(UInt64Type, |v| v as f64),
        DataType::Float16 => each!(Float16Type, |v| v.to_f64()),
        DataType::Float32 => each!(Float32Type, f64::from),
        DataType::Float64 => each!(Float64Type, |v| v),
        &DataType::Decimal32(_, s) => each!(Decimal32Type, |v| f64::from(v) * unscale(s)),
        &DataType::Decimal64(_, s) => each!(Decimal64Type, |v| v as f64 * unscale(s)),
        &DataType::Decimal128(_, s) => each!(Decimal128Type, |v| v as f64 * unscale(s)),
        // i256 has no float conversion of its own; its decimal text always parses.
        &DataType::Decimal256(_, s) => each!(Decimal256Type, |v| {
            v.to_string().parse::<f64>().unwrap_or(f64::NAN) * unscale(s)
        }),
        DataType::Dictionary(..) => return through_dictionary(array, numbers),
        _ => return None,
    })
}

/// The cells of a text or boolean array ("true", "false"); `None` for other types.
pub fn texts(array: &dyn Array) -> Option<Vec<Option<String>>> {
    let owned = |x: Option<&str>| x.map(str::to_owned);
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string_opt::<i32>()?.iter().map(owned).collect(),
        DataType::LargeUtf8 => array.as_string_opt::<i64>()?.iter().map(owned).collect(),
        DataType::Utf8View => array.as_string_view_opt()?.iter().map(owned).collect(),
        DataType::Boolean => array
            .as_boolean_opt()?
            .iter()
            .map(|x| x.map(|b| b.to_string()))
            .collect(),
        DataType::Dictionary(..) => return through_dictionary(array, texts),
        _ => return None,
    })
}

/// A dictionary array's cells: its values looked up by its keys (a null key is missing).
fn through_dictionary<T: Clone>(
    array: &dyn Array,
    cells: fn(&dyn Array) -> Option<Vec<Option<T>>>,
) -> Option<Vec<Option<T>>> {
    let dictionary = array.as_any_dictionary_opt()?;
    let values = cells(dictionary.values().as_ref())?;
    // Without values every key is null (and `normalized_keys` would panic).
    if values.is_empty() {
        return Some(vec![None; array.len()]);
    }
    let keys = dictionary.keys();
    Some(
        dictionary
            .normalized_keys()
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                if keys.is_null(i) {
                    None
                } else {
                    values[k].clone()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int32Array, StringArray, UInt64Array};
    use arrow::datatypes::Int32Type;

    use super::*;

    #[test]
    fn a_dictionary_without_values_is_all_missing() {
        let empty = DictionaryArray::<Int32Type>::new(
            Int32Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        );
        assert_eq!(texts(&empty), Some(vec![None, None]));
        assert_eq!(numbers(&empty), None);
    }

    #[test]
    fn kinds_do_not_mix() {
        let text = StringArray::from(vec!["1"]);
        assert_eq!(
            (numbers(&text), is_numeric(text.data_type())),
            (None, Some(false))
        );
        let big = UInt64Array::from(vec![u64::MAX]);
        assert_eq!(numbers(&big), Some(vec![Some(u64::MAX as f64)]));
        assert_eq!(texts(&big), None);
        assert_eq!(is_numeric(&DataType::Date32), None);
    }
}
