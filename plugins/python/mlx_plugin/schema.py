"""JSON Schemas of operations: helpers to write them, and the input check the SDK runs
before an operation sees its input.

The check covers the keywords operations use for plain JSON inputs: `type`, `properties`,
`required`, `additionalProperties`, `items`, `enum`, `const`, `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`,
and fills in each missing property's `default`. Other keywords are ignored here (they are
still published to callers in `describe`). A failure names the path and the rule, e.g.
`input.columns[1]: expected string, got number`.
"""

import copy
from typing import Any, Iterable, List, Optional


def object(properties: dict, required: Iterable[str] = (), **extra) -> dict:
    """An object schema with `properties` that rejects unknown properties: the usual shape of
    an operation's input."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }
    schema.update(extra)
    return schema


def string(description: Optional[str] = None, **extra) -> dict:
    return _typed("string", description, extra)


def number(description: Optional[str] = None, **extra) -> dict:
    return _typed("number", description, extra)


def integer(description: Optional[str] = None, **extra) -> dict:
    return _typed("integer", description, extra)


def boolean(description: Optional[str] = None, **extra) -> dict:
    return _typed("boolean", description, extra)


def array(items: dict, description: Optional[str] = None, **extra) -> dict:
    return _typed("array", description, dict(extra, items=items))


def _typed(name: str, description: Optional[str], extra: dict) -> dict:
    schema = {"type": name}
    if description is not None:
        schema["description"] = description
    schema.update(extra)
    return schema


_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return (type(value) is int) or (type(value) is float and value.is_integer())
    if name == "number":
        return type(value) in (int, float)
    return _json_type(value) == name


def validate(value: Any, schema: Any, path: str = "input") -> List[str]:
    """The rules `value` breaks, each naming its path; defaults are filled in place."""
    if schema is True or not isinstance(schema, dict):
        return []
    if schema is False:
        return [f"{path}: not allowed"]
    problems: List[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_is(value, n) for n in names):
            got = _json_type(value)
            return [f"{path}: expected {' or '.join(names)}, got {got}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: must be one of {schema['enum']}, got {value!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: must be {schema['const']!r}, got {value!r}")
    if type(value) in (int, float):
        for rule, ok in (
            ("minimum", lambda limit: value >= limit),
            ("maximum", lambda limit: value <= limit),
            ("exclusiveMinimum", lambda limit: value > limit),
            ("exclusiveMaximum", lambda limit: value < limit),
        ):
            limit = schema.get(rule)
            if type(limit) in (int, float) and not ok(limit):
                problems.append(f"{path}: {rule} is {limit}, got {value}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: minLength is {schema['minLength']}, got {len(value)}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: maxLength is {schema['maxLength']}, got {len(value)}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: minItems is {schema['minItems']}, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: maxItems is {schema['maxItems']}, got {len(value)}")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                problems += validate(item, items, f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems += validate(item, properties[name], f"{path}.{name}")
            elif extra is False:
                known = ", ".join(sorted(properties)) or "none"
                problems.append(
                    f"{path}: unknown property {name!r} (known properties: {known})"
                )
            else:
                problems += validate(item, extra, f"{path}.{name}")
        for name, sub in properties.items():
            if name not in value and isinstance(sub, dict) and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
    return problems
