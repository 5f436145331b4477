//! The small expression form of pipeline specs: `when` conditions and `${...}` references in
//! step inputs, both over params and earlier steps' results.
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := not ("&&" not)*
//! not     := "!" not | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//! operand := number | 'text' | "text" | true | false | null | path | "(" expr ")"
//! path    := params.NAME(.KEY)* | steps.ID.output(.KEY)* | steps.ID.status | item(.KEY)*
//! ```
//!
//! `item` is the value one run of a fan-out step (`for_each` or `matrix`) is for; it exists
//! only in such a step's input.
//!
//! A path that leads nowhere (a key the output lacks) is `null`. `==`/`!=` compare any two
//! values; `<`, `<=`, `>`, `>=` compare two numbers or two strings and are an error otherwise,
//! as is a condition that is not a boolean: a typo must stop the pipeline, not skip a step.

use std::fmt;

use serde_json::Value;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    Param(String),
    /// A step's output (`steps.ID.output...`).
    Output(String),
    /// A step's status (`steps.ID.status`): succeeded, failed, skipped.
    Status(String),
    /// The current item of a fan-out step (`item...`).
    Item,
}

/// A reference to a value: a root and keys into it (array indices are keys of digits).
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: Root,
    pub keys: Vec<String>,
}

impl Path {
    /// The step a path reads from, if any.
    pub fn step(&self) -> Option<&str> {
        match &self.root {
            Root::Param(_) | Root::Item => None,
            Root::Output(id) | Root::Status(id) => Some(id),
        }
    }

    /// The value `path` leads to in `scope`; `null` where it leads nowhere.
    pub fn lookup(&self, scope: &dyn Scope) -> Value {
        let root = scope.root(&self.root).unwrap_or(Value::Null);
        descend(root, self.keys.iter().map(String::as_str))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let bad = |why: &str| Err(format!("`{text}`: {why}"));
        if parts.iter().any(|p| p.is_empty()) {
            return bad("empty segment");
        }
        match parts.as_slice() {
            ["params", name, keys @ ..] => Ok(Self {
                root: Root::Param((*name).to_string()),
                keys: keys.iter().map(|k| (*k).to_string()).collect(),
            }),
            ["steps", id, "output", keys @ ..] => Ok(Self {
                root: Root::Output((*id).to_string()),
                keys: keys.iter().map(|k| (*k).to_string()).collect(),
            }),
            ["steps", id, "status"] => Ok(Self {
                root: Root::Status((*id).to_string()),
                keys: Vec::new(),
            }),
            ["steps", ..] => bad("a step path is steps.ID.output[.KEY...] or steps.ID.status"),
            ["item", keys @ ..] => Ok(Self {
                root: Root::Item,
                keys: keys.iter().map(|k| (*k).to_string()).collect(),
            }),
            _ => bad("a path starts with params., steps. or item"),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Root::Param(name) => write!(f, "params.{name}")?,
            Root::Output(id) => write!(f, "steps.{id}.output")?,
            Root::Status(id) => write!(f, "steps.{id}.status")?,
            Root::Item => f.write_str("item")?,
        }
        self.keys.iter().try_for_each(|k| write!(f, ".{k}"))
    }
}

/// The value `keys` lead to inside `value` (array indices are keys of digits); `null` where
/// they lead nowhere.
pub fn descend<'a>(mut value: Value, keys: impl IntoIterator<Item = &'a str>) -> Value {
    for key in keys {
        value = match value {
            Value::Object(mut map) => map.remove(key).unwrap_or(Value::Null),
            Value::Array(mut items) => match key.parse::<usize>() {
                Ok(i) if i < items.len() => items.swap_remove(i),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
    }
    value
}

/// What paths are read from while evaluating.
pub trait Scope {
    /// The value at the root of `path` (a param, a step's output or status), if known.
    fn root(&self, root: &Root) -> Option<Value>;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Path(Path),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, CompareOp, Box<Expr>),
}

impl Expr {
    pub fn parse(text: &str) -> Result<Self, String> {
        // Parsing, evaluating and dropping recurse: bounds keep a hostile or generated
        // condition from overflowing the stack of the worker that runs the workflow.
        if text.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the expression is {} bytes; at most {MAX_EXPR_BYTES}",
                text.len()
            ));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(expr),
            Some(t) => Err(format!("unexpected {t} after a complete expression")),
        }
    }

    /// Every path the expression reads, for validation before anything runs.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Path(p) => out.push(p),
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, _, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Evaluates a condition: it must come out a boolean.
    pub fn condition(&self, scope: &dyn Scope) -> Result<bool, String> {
        match self.value(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("the condition is {other}, not true or false")),
        }
    }

    fn value(&self, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Path(p) => p.lookup(scope),
            Expr::Not(e) => Value::Bool(!e.condition(scope)?),
            // Short-circuit, so `steps.a.status == 'succeeded' && steps.a.output.x > 1` is safe.
            Expr::And(a, b) => Value::Bool(a.condition(scope)? && b.condition(scope)?),
            Expr::Or(a, b) => Value::Bool(a.condition(scope)? || b.condition(scope)?),
            Expr::Compare(a, op, b) => {
                Value::Bool(compare(&a.value(scope)?, *op, &b.value(scope)?)?)
            }
        })
    }
}

fn compare(a: &Value, op: CompareOp, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    let order = match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x.partial_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        CompareOp::Eq => Ok(order.map_or(a == b, |o| o == Ordering::Equal)),
        CompareOp::Ne => Ok(order.map_or(a != b, |o| o != Ordering::Equal)),
        _ => {
            let o = order.ok_or_else(|| format!("cannot order {a} and {b}"))?;
            Ok(match op {
                CompareOp::Lt => o == Ordering::Less,
                CompareOp::Le => o != Ordering::Greater,
                CompareOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Value(Value),
    Path(Path),
    Op(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Value(v) => write!(f, "`{v}`"),
            Token::Path(p) => write!(f, "`{p}`"),
            Token::Op(op) => write!(f, "`{op}`"),
        }
    }
}

const OPERATORS: [&str; 11] = ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")"];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while let Some(c) = rest.chars().next() {
        if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            tokens.push(Token::Op(op));
            rest = &rest[op.len()..];
        } else if c == '\'' || c == '"' {
            let end = rest[1..]
                .find(c)
                .ok_or_else(|| format!("unterminated string starting at `{rest}`"))?;
            tokens.push(Token::Value(Value::String(rest[1..=end].to_string())));
            rest = &rest[end + 2..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("unexpected `{c}`"));
            }
            let word = &rest[..end];
            tokens.push(match word {
                "true" => Token::Value(Value::Bool(true)),
                "false" => Token::Value(Value::Bool(false)),
                "null" => Token::Value(Value::Null),
                _ if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                    let number: serde_json::Number = word
                        .parse()
                        .map_err(|_| format!("`{word}` is not a number"))?;
                    Token::Value(Value::Number(number))
                }
                _ => Token::Path(Path::parse(word)?),
            });
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

/// Longest condition accepted; real ones are a line.
const MAX_EXPR_BYTES: usize = 2048;
/// Deepest nesting of parentheses and `!` accepted.
const MAX_DEPTH: usize = 32;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn eat(&mut self, op: &str) -> bool {
        let found = matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op);
        self.at += usize::from(found);
        found
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    /// Counts one level of nesting for the duration of `parse`.
    fn nested(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        let parsed = parse(self);
        self.depth -= 1;
        parsed
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        let left = self.operand()?;
        let ops = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ];
        for (text, op) in ops {
            if self.eat(text) {
                return Ok(Expr::Compare(Box::new(left), op, Box::new(self.operand()?)));
            }
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Value(v)) => Ok(Expr::Literal(v)),
            Some(Token::Path(p)) => Ok(Expr::Path(p)),
            Some(Token::Op("(")) => self.nested(|p| {
                let inner = p.or()?;
                if !p.eat(")") {
                    return Err("missing `)`".into());
                }
                Ok(inner)
            }),
            Some(other) => Err(format!("expected a value or a path, found {other}")),
            None => Err("the expression ends too early".into()),
        }
    }
}

/// `${PATH}` references in a step's input. A string that is exactly one reference becomes the
/// referenced value (numbers stay numbers); references inside a longer string are spliced in
/// as text.
pub mod template {
    use super::{Path, Scope};
    use serde_json::Value;

    /// Every reference in `value`, for validation; an error names the malformed one.
    pub fn paths(value: &Value) -> Result<Vec<Path>, String> {
        let mut out = Vec::new();
        visit(value, &mut |text| {
            for_each_ref(text, |p| {
                out.push(p);
                Ok(String::new())
            })
            .map(drop)
        })?;
        Ok(out)
    }

    /// `value` with every reference replaced.
    pub fn resolve(value: &Value, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match value {
            Value::String(text) => {
                let trimmed = text.trim();
                let whole = trimmed.starts_with("${")
                    && trimmed.ends_with('}')
                    && trimmed.matches("${").count() == 1;
                if whole {
                    Path::parse(&trimmed[2..trimmed.len() - 1])?.lookup(scope)
                } else {
                    Value::String(for_each_ref(text, |p| {
                        Ok(match p.lookup(scope) {
                            Value::String(s) => s,
                            other => other.to_string(),
                        })
                    })?)
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| resolve(v, scope))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), resolve(v, scope)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    fn visit(value: &Value, f: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<(), String> {
        match value {
            Value::String(text) => f(text),
            Value::Array(items) => items.iter().try_for_each(|v| visit(v, f)),
            Value::Object(map) => map.values().try_for_each(|v| visit(v, f)),
            _ => Ok(()),
        }
    }

    /// `text` with each `${PATH}` replaced by `splice(PATH)`.
    fn for_each_ref(
        text: &str,
        mut splice: impl FnMut(Path) -> Result<String, String>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("`{text}`: `${{` without a closing `}}`"))?;
            out.push_str(&splice(Path::parse(rest[start + 2..start + end].trim())?)?);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Values(Value);

    impl Scope for Values {
        fn root(&self, root: &Root) -> Option<Value> {
            match root {
                Root::Param(name) => self.0["params"].get(name).cloned(),
                Root::Output(id) => self.0["steps"][id].get("output").cloned(),
                Root::Status(id) => self.0["steps"][id].get("status").cloned(),
                Root::Item => self.0.get("item").cloned(),
            }
        }
    }

    fn scope() -> Values {
        Values(json!({
            "params": {"threshold": 0.9, "mode": "full"},
            "steps": {"train": {"status": "succeeded",
                                "output": {"metrics": {"accuracy": 0.93}, "files": ["a", "b"]}}}
        }))
    }

    fn eval(text: &str) -> Result<bool, String> {
        Expr::parse(text)?.condition(&scope())
    }

    #[test]
    fn the_documented_example_and_friends() {
        assert_eq!(eval("steps.train.output.metrics.accuracy >= 0.9"), Ok(true));
        assert_eq!(
            eval("steps.train.output.metrics.accuracy >= params.threshold"),
            Ok(true)
        );
        assert_eq!(eval("steps.train.output.metrics.accuracy < 0.5"), Ok(false));
        assert_eq!(
            eval("params.mode == 'full' && !(params.threshold > 1)"),
            Ok(true)
        );
        assert_eq!(
            eval("steps.train.status != \"succeeded\" || false"),
            Ok(false)
        );
        assert_eq!(eval("steps.train.output.files.1 == 'b'"), Ok(true));
        assert_eq!(eval("steps.train.output.missing == null"), Ok(true));
        assert_eq!(eval("1 == 1.0"), Ok(true));
    }

    #[test]
    fn and_binds_tighter_than_or_and_short_circuits() {
        assert_eq!(eval("true || false && false"), Ok(true));
        // The right side would be an error (ordering null), but is never evaluated.
        assert_eq!(eval("false && steps.train.output.missing > 1"), Ok(false));
    }

    #[test]
    fn mistakes_are_errors_not_silent_skips() {
        assert!(
            eval("steps.train.output.missing > 1")
                .unwrap_err()
                .contains("cannot order")
        );
        assert!(
            eval("params.threshold")
                .unwrap_err()
                .contains("not true or false")
        );
        for bad in [
            "",
            "params.x >",
            "(true",
            "true false",
            "steps.train.accuracy > 1",
            "metrics.accuracy > 1",
            "'open",
            "params..x == 1",
            "a # b",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn hostile_sizes_are_refused_not_a_stack_overflow() {
        let deep = format!("{}true{}", "(".repeat(1000), ")".repeat(1000));
        assert!(
            Expr::parse(&deep)
                .unwrap_err()
                .contains("nested more than 32")
        );
        let nots = format!("{}true", "!".repeat(1000));
        assert!(
            Expr::parse(&nots)
                .unwrap_err()
                .contains("nested more than 32")
        );
        let long = vec!["true"; 1000].join(" || ");
        assert!(Expr::parse(&long).unwrap_err().contains("at most 2048"));
        let fine = format!("{}true{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(
            Expr::parse(&fine).unwrap(),
            Expr::Literal(Value::Bool(true))
        );
    }

    #[test]
    fn templates_keep_types_when_whole_and_splice_text_otherwise() {
        let input = json!({
            "threshold": "${params.threshold}",
            "label": "run-${params.mode}-${steps.train.output.metrics.accuracy}",
            "nested": ["${steps.train.output.files}", 3],
        });
        let refs: Vec<String> = template::paths(&input)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(refs.len(), 4, "{refs:?}");
        let out = template::resolve(&input, &scope()).unwrap();
        assert_eq!(
            out,
            json!({"threshold": 0.9, "label": "run-full-0.93", "nested": [["a", "b"], 3]})
        );
        assert!(template::paths(&json!("${params.x")).is_err());
        assert!(template::paths(&json!("${nope.x}")).is_err());
    }

    #[test]
    fn paths_are_listed_for_validation() {
        let expr =
            Expr::parse("steps.a.status == 'succeeded' && params.t < steps.b.output.x").unwrap();
        let paths: Vec<String> = expr.paths().iter().map(|p| p.to_string()).collect();
        assert_eq!(paths, ["steps.a.status", "params.t", "steps.b.output.x"]);
    }
}
