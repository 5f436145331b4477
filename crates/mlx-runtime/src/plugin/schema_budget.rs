//! A bound on the work one input check can cost the worker, set before a plugin's schema is
//! compiled.
//!
//! A validator evaluates a `$ref` by evaluating its target, so a schema that reuses
//! definitions costs what it would cost with every `$ref` written out. Forty definitions each
//! `anyOf` two references to the next expand to 2^40 subschemas, and a self-referencing
//! `anyOf` doubles its work at each level of a nested input: either would hold a worker thread
//! for hours on one small request. So the schema is measured as if every `$ref` were inlined
//! (memoised per target, never actually inlined) and refused above [`MAX_EXPANDED_NODES`];
//! recursive references are refused, and only the references this measure can follow are
//! allowed: local JSON Pointers (`#/$defs/Name`), with no `$id` below the root to move them.
//! With that, one check costs at most the expanded size times the size of the input.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// JSON nodes of a schema with every `$ref` inlined. Derived schemas of real operations have a
/// few hundred; a 64 KiB schema without references has at most about 30 000.
pub const MAX_EXPANDED_NODES: usize = 100_000;
/// `$ref`s followed inside one another: bounds the measure's own recursion.
const MAX_REF_DEPTH: usize = 64;
/// Keywords whose values are data, not schemas: counted, never read as keywords.
const DATA_KEYWORDS: &[&str] = &["enum", "const", "default", "examples"];
/// Keywords whose values map names to schemas.
const NAMED_SCHEMAS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
];

/// Checks `schema` against the rules above; the error says which rule and where.
pub fn check(schema: &Value) -> Result<usize, String> {
    Expansion {
        root: schema,
        memo: HashMap::new(),
        following: HashSet::new(),
    }
    .size(schema, 0, true)
}

struct Expansion<'a> {
    root: &'a Value,
    /// Expanded size of each `$ref` target measured so far.
    memo: HashMap<&'a str, usize>,
    /// Targets being measured: meeting one again is recursion.
    following: HashSet<&'a str>,
}

impl<'a> Expansion<'a> {
    /// Expanded size of a schema (an object or a boolean) and of what it holds.
    fn size(&mut self, node: &'a Value, depth: usize, at_root: bool) -> Result<usize, String> {
        let mut total: usize = 1;
        if let Value::Object(map) = node {
            for (key, value) in map {
                let part = match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => self.follow(target, depth)?,
                    ("$dynamicRef" | "$recursiveRef", Value::String(_)) => {
                        return Err(format!("{key} is not supported; use a local $ref"));
                    }
                    ("$id" | "id", Value::String(_)) if !at_root => {
                        return Err(format!(
                            "{key} below the schema's root is not supported (it moves where \
                             $refs point); define sub-schemas under $defs"
                        ));
                    }
                    (data, value) if DATA_KEYWORDS.contains(&data) => count(value),
                    // Maps from names to schemas: the names are not keywords.
                    (named, Value::Object(schemas)) if NAMED_SCHEMAS.contains(&named) => {
                        let mut part: usize = 1;
                        for schema in schemas.values() {
                            part = part.saturating_add(self.held(schema, depth)?);
                        }
                        part
                    }
                    (_, value) => self.held(value, depth)?,
                };
                total = total.saturating_add(part);
            }
        }
        if total > MAX_EXPANDED_NODES {
            return Err(format!(
                "it expands to more than {MAX_EXPANDED_NODES} nodes with its $refs inlined, so \
                 checking one input could hold the worker for a long time; share less through \
                 $ref, or simplify it"
            ));
        }
        Ok(total)
    }

    /// A keyword's value: a schema, a list of schemas (or of names), or a scalar. Objects are
    /// read as schemas, so an unknown keyword is measured as the validator might use it.
    fn held(&mut self, value: &'a Value, depth: usize) -> Result<usize, String> {
        match value {
            Value::Object(_) => self.size(value, depth, false),
            Value::Array(items) => {
                let mut total: usize = 1;
                for item in items {
                    total = total.saturating_add(self.held(item, depth)?);
                }
                Ok(total)
            }
            _ => Ok(1),
        }
    }

    fn follow(&mut self, target: &'a str, depth: usize) -> Result<usize, String> {
        let Some(pointer) = target.strip_prefix('#') else {
            return Err(format!(
                "$ref {target:?} is not local: only references into the schema itself \
                 (#/$defs/Name) are followed"
            ));
        };
        if let Some(&size) = self.memo.get(pointer) {
            return Ok(size);
        }
        if depth >= MAX_REF_DEPTH {
            return Err(format!("$refs are nested more than {MAX_REF_DEPTH} deep"));
        }
        if !self.following.insert(pointer) {
            return Err(format!(
                "$ref {target:?} is recursive; describe the input without recursion"
            ));
        }
        let node = self
            .root
            .pointer(pointer)
            .ok_or_else(|| format!("$ref {target:?} points at nothing in the schema"))?;
        let size = self.size(node, depth + 1, pointer.is_empty())?;
        self.following.remove(pointer);
        self.memo.insert(pointer, size);
        Ok(size)
    }
}

/// Nodes of a JSON value, iteratively: data can be as deep as the parser allows.
fn count(value: &Value) -> usize {
    let mut stack = vec![value];
    let mut n: usize = 0;
    while let Some(v) = stack.pop() {
        n += 1;
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shared_definitions_are_counted_as_if_inlined() {
        let schema = json!({
            "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}},
        });
        let plain = check(&schema).unwrap();
        let point = check(&schema["$defs"]["point"]).unwrap();
        // The definition itself, plus each of its two uses written out.
        assert!(plain >= 3 * point, "{plain} vs {point}");
    }

    #[test]
    fn an_exponential_chain_of_definitions_is_refused() {
        let mut defs = serde_json::Map::new();
        for i in 0..40 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next, "minimum": 1}]}),
            );
        }
        defs.insert("d40".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/d0"});
        let err = check(&schema).unwrap_err();
        assert!(err.contains("more than 100000 nodes"), "{err}");
    }

    #[test]
    fn a_property_named_like_a_data_keyword_is_still_measured_as_a_schema() {
        let mut defs = serde_json::Map::new();
        for i in 0..40 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("d40".into(), json!({"type": "string"}));
        let schema = json!({
            "$defs": defs,
            "properties": {"default": {"$ref": "#/$defs/d0"}},
        });
        assert!(check(&schema).is_err());
    }

    #[test]
    fn recursion_and_references_it_cannot_follow_are_refused() {
        for (schema, says) in [
            (json!({"anyOf": [{"items": {"$ref": "#"}}]}), "recursive"),
            (
                json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"items": {"$ref": "#/$defs/a"}}},
                       "$ref": "#/$defs/a"}),
                "recursive",
            ),
            (json!({"$ref": "https://example.com/s.json"}), "not local"),
            (json!({"$ref": "#/$defs/missing"}), "points at nothing"),
            (
                json!({"$dynamicAnchor": "x", "$dynamicRef": "#x"}),
                "$dynamicRef",
            ),
            (
                json!({"properties": {"a": {"$id": "sub", "$ref": "#/x"}}}),
                "below the schema's root",
            ),
        ] {
            let err = check(&schema).expect_err(says);
            assert!(err.contains(says), "{schema}: {err}");
        }
    }

    #[test]
    fn data_and_property_names_are_not_read_as_keywords() {
        let schema = json!({
            "$id": "https://example.com/root",
            "type": "object",
            "properties": {
                "$ref": {"type": "string"},
                "$dynamicRef": {"type": "string"},
                "id": {"type": "string", "default": "x"},
            },
            "default": {"$ref": "not a reference", "id": "nor an id"},
            "examples": [{"$dynamicRef": 1}],
        });
        assert!(check(&schema).is_ok());
    }
}
