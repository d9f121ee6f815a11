//! JSON values of the catalogue's metadata.

use losskit::catalog::{LossSpec, OptDefault};
use serde_json::{json, Value};

/// A finite float as a JSON number, a non-finite one as "nan", "inf" or "-inf".
pub fn number(v: f64) -> Value {
    if v.is_nan() {
        Value::from("nan")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(v)
    }
}

/// An option default as the catalogue writes it (`"None"` for Python's None).
pub fn default_value(d: &OptDefault) -> Value {
    match *d {
        OptDefault::Float(f) => number(f),
        OptDefault::Int(i) => json!(i),
        OptDefault::Bool(b) => json!(b),
        OptDefault::Str(s) => json!(s),
        OptDefault::None => json!("None"),
    }
}

/// The `list --json` object of one loss.
pub fn spec(s: &LossSpec) -> Value {
    json!({
        "id": s.id,
        "family": s.family.name(),
        "reference": s.reference,
        "summary": s.summary,
        "args": s.args.iter().map(|a| json!({
            "name": a.name, "grad": a.grad, "optional": a.optional,
            "dtype": a.kind.name(), "shape": a.shape,
        })).collect::<Vec<_>>(),
        "options": s.options.iter().map(|o| json!({
            "name": o.name, "type": o.kind.name(), "default": default_value(&o.default),
            "values": o.values, "required": o.required,
        })).collect::<Vec<_>>(),
    })
}
