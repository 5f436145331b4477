//! JSON Schemas of operations: derived from their types ([`input`], [`output`]), or written by
//! hand for [`crate::Plugin`] implementations ([`object`]).

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::{Value, json};

/// The schema of an input type `T` as serde reads it: draft 2020-12, with every referenced
/// type under its own `$defs`, so a validator compiled from this schema alone resolves them.
pub fn input<T: JsonSchema>() -> Value {
    let mut schema = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    unwrap_descriptions(&mut schema);
    schema
}

/// The schema of an output type `T` as serde writes it (fields with defaults are required:
/// they are always written).
pub fn output<T: JsonSchema>() -> Value {
    let mut schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    unwrap_descriptions(&mut schema);
    schema
}

/// Doc comments keep their source line breaks; a description reads better with each
/// paragraph on one line, as the other SDKs write them.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// An object schema with `properties` that rejects unknown properties, the usual shape of an
/// operation's input.
pub fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}
