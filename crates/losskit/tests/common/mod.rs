//! Shared by the integration tests: the one tolerance rule, and the reference fixtures
//! (`fixtures/reference/<id>.json`, written by `tools/fixtures/generate.py`).
//!
//! Each test crate uses a part of this module only.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use losskit::catalog::{AnyTensor, ArrayArg};
use losskit::Tensor;
use serde_json::Value;

/// Tolerance of float64 results: `max|out - ref| / max|ref|`.
pub const TOL64: f64 = 1e-9;
/// Tolerance of float32 results (the reference being the exact result rounded to float32).
pub const TOL32: f64 = 2e-5;

/// The tolerance of a computation dtype.
pub fn tol(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F64 => TOL64,
        Dtype::F32 => TOL32,
    }
}

/// The comparison rule of every test (and of the conformance tool): NaN positions must match,
/// infinities must match in position and sign, and on the remaining positions
/// `max|out - ref| / max(max|ref|, 1e-30) <= tol`. Returns the relative error, or what is wrong.
pub fn compare(out: &[f64], reference: &[f64], tol: f64) -> Result<f64, String> {
    if out.len() != reference.len() {
        return Err(format!("{} elements, expected {}", out.len(), reference.len()));
    }
    for (i, (&o, &r)) in out.iter().zip(reference).enumerate() {
        if o.is_nan() != r.is_nan() {
            return Err(format!("NaN positions differ: at {i} got {o:?}, want {r:?}"));
        }
        if (o.is_infinite() || r.is_infinite()) && !(o.is_nan() || r.is_nan()) && o != r {
            return Err(format!("infinities differ: at {i} got {o:?}, want {r:?}"));
        }
    }
    let scale = reference.iter().filter(|r| r.is_finite()).fold(1e-30f64, |m, r| m.max(r.abs()));
    let mut worst = (0.0f64, 0usize);
    for (i, (&o, &r)) in out.iter().zip(reference).enumerate() {
        if r.is_finite() {
            let d = (o - r).abs();
            if d > worst.0 || d.is_nan() {
                worst = (d, i);
            }
        }
    }
    let err = worst.0 / scale;
    if err <= tol {
        Ok(err)
    } else {
        let i = worst.1;
        Err(format!(
            "max|out-ref|/max|ref| = {err:.3e} > {tol:.0e} (worst at {i}: got {:?}, want {:?})",
            out[i], reference[i]
        ))
    }
}

/// The two computation dtypes the fixtures hold references for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// float64 inputs, float64 reference.
    F64,
    /// The inputs rounded to float32; the reference rounded to float32.
    F32,
}

impl Dtype {
    /// The fixture's key and NumPy's name.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
        }
    }
}

/// One argument of a fixture case, as written (floats in float64).
#[derive(Clone, Debug)]
pub enum FixArg {
    /// A float argument.
    Float { shape: Vec<usize>, data: Vec<f64> },
    /// An integer argument.
    Int { shape: Vec<usize>, data: Vec<i64> },
}

impl FixArg {
    /// The argument as `catalog::evaluate` takes it in `dtype` (floats rounded to float32 for
    /// `Dtype::F32`, as NumPy's `astype(float32)` does).
    pub fn to_array(&self, dtype: Dtype) -> ArrayArg {
        match self {
            FixArg::Float { shape, data } => match dtype {
                Dtype::F64 => ArrayArg::F64(tensor(data.clone(), shape)),
                Dtype::F32 => ArrayArg::F32(tensor(data.iter().map(|&v| v as f32).collect(), shape)),
            },
            FixArg::Int { shape, data } => ArrayArg::Int(tensor(data.clone(), shape)),
        }
    }
}

fn tensor<T: Clone>(data: Vec<T>, shape: &[usize]) -> Tensor<T> {
    Tensor::new(data, shape.to_vec()).unwrap_or_else(|e| panic!("fixture array does not fit its shape: {e}"))
}

/// An expected array.
#[derive(Clone, Debug)]
pub struct Expected {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The expected loss and gradients of one case in one dtype.
#[derive(Clone, Debug)]
pub struct Outputs {
    pub loss: Expected,
    pub grads: Vec<(String, Expected)>,
}

/// One fixture case.
#[derive(Clone, Debug)]
pub struct FixCase {
    pub label: String,
    pub args: Vec<(String, FixArg)>,
    pub options: Vec<(String, String)>,
    pub f64: Outputs,
    pub f32: Outputs,
}

impl FixCase {
    /// The arguments as `catalog::evaluate` takes them.
    pub fn arrays(&self, dtype: Dtype) -> Vec<(String, ArrayArg)> {
        self.args.iter().map(|(n, a)| (n.clone(), a.to_array(dtype))).collect()
    }

    /// The expected outputs in `dtype`.
    pub fn expected(&self, dtype: Dtype) -> &Outputs {
        match dtype {
            Dtype::F64 => &self.f64,
            Dtype::F32 => &self.f32,
        }
    }
}

/// One fixture file.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub id: String,
    /// `fixtures/reference/<id>.json`, for messages.
    pub file: String,
    pub cases: Vec<FixCase>,
}

/// `fixtures/reference` of the repository.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference")
}

/// Every fixture file, sorted by id. Panics when the folder or a file cannot be read or
/// parsed (a broken fixture is a broken test, not a skipped one).
pub fn load_fixtures() -> Vec<Fixture> {
    let dir = fixture_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixture in {}", dir.display());
    paths.iter().map(|p| parse_fixture(p)).collect()
}

fn parse_fixture(path: &Path) -> Fixture {
    let where_ = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{where_}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{where_}: invalid JSON: {e}"));
    let id = v["id"].as_str().unwrap_or_else(|| panic!("{where_}: no \"id\"")).to_string();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    assert_eq!(stem, id, "{where_}: the file name is not the id");
    let cases = v["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{where_}: no \"cases\" array"))
        .iter()
        .enumerate()
        .map(|(k, c)| parse_case(c, &format!("{where_} case {k}")))
        .collect();
    Fixture { file: format!("fixtures/reference/{id}.json"), id, cases }
}

fn parse_case(c: &Value, where_: &str) -> FixCase {
    let label = c["label"].as_str().unwrap_or_else(|| panic!("{where_}: no label")).to_string();
    let where_ = format!("{where_} [{label}]");
    let args = object(&c["args"], &where_)
        .iter()
        .map(|(name, a)| {
            let w = format!("{where_} arg {name}");
            let shape = shape(&a["shape"], &w);
            let arg = match a["dtype"].as_str() {
                Some("float") => FixArg::Float { shape, data: floats(&a["data"], &w) },
                Some("int") => FixArg::Int {
                    shape,
                    data: list(&a["data"], &w)
                        .iter()
                        .map(|x| x.as_i64().unwrap_or_else(|| panic!("{w}: {x} is not an integer")))
                        .collect(),
                },
                other => panic!("{w}: dtype {other:?}"),
            };
            (name.clone(), arg)
        })
        .collect();
    let options = object(&c["options"], &where_)
        .iter()
        .map(|(n, t)| (n.clone(), t.as_str().unwrap_or_else(|| panic!("{where_}: option {n} is not text")).to_string()))
        .collect();
    FixCase {
        label,
        args,
        options,
        f64: outputs(&c["f64"], &format!("{where_} f64")),
        f32: outputs(&c["f32"], &format!("{where_} f32")),
    }
}

fn outputs(v: &Value, where_: &str) -> Outputs {
    let loss = expected(&v["loss"], &format!("{where_} loss"));
    let grads = object(&v["grads"], where_)
        .iter()
        .map(|(n, g)| (n.clone(), expected(g, &format!("{where_} grad {n}"))))
        .collect();
    Outputs { loss, grads }
}

fn expected(v: &Value, where_: &str) -> Expected {
    Expected { shape: shape(&v["shape"], where_), data: floats(&v["data"], where_) }
}

fn object<'a>(v: &'a Value, where_: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("{where_}: expected an object, got {v}"))
}

fn list<'a>(v: &'a Value, where_: &str) -> &'a Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("{where_}: expected an array, got {v}"))
}

fn shape(v: &Value, where_: &str) -> Vec<usize> {
    list(v, where_)
        .iter()
        .map(|d| d.as_u64().unwrap_or_else(|| panic!("{where_}: bad dimension {d}")) as usize)
        .collect()
}

/// Numbers, or the strings "nan", "inf", "-inf".
fn floats(v: &Value, where_: &str) -> Vec<f64> {
    list(v, where_)
        .iter()
        .map(|x| match x {
            Value::Number(n) => n.as_f64().unwrap_or_else(|| panic!("{where_}: {n} is not a float")),
            Value::String(s) => match s.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => panic!("{where_}: {s:?} is not a number"),
            },
            other => panic!("{where_}: {other} is not a number"),
        })
        .collect()
}

/// The shape and the elements (widened to f64) of a result.
pub fn widen(t: &AnyTensor) -> (Vec<usize>, Vec<f64>) {
    (t.shape().to_vec(), t.to_f64_vec())
}

/// The ids of the registered losses.
pub fn registered_ids() -> Vec<&'static str> {
    losskit::catalog::specs().map(|s| s.id).collect()
}
