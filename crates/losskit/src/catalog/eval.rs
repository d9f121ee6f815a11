//! Evaluation by id: arguments and options by name, dispatched through the registry. This is
//! what `losskit eval` (and any other front end) calls.

use crate::catalog::spec::{ArgKind, LossSpec, OptDefault, OptKind, OptionSpec};
use crate::error::{LossError, Result};
use crate::float::{DType, Float};
use crate::grad::{Backward, Grads};
use crate::reduction::Reduction;
use crate::tensor::{Tensor, View};

/// An argument array of any supported element type, as read from a file.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayArg {
    /// float32 data.
    F32(Tensor<f32>),
    /// float64 data.
    F64(Tensor<f64>),
    /// Integer data (any integer dtype, widened).
    Int(Tensor<i64>),
    /// Boolean data.
    Bool(Tensor<bool>),
}

impl ArrayArg {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            ArrayArg::F32(t) => t.shape(),
            ArrayArg::F64(t) => t.shape(),
            ArrayArg::Int(t) => t.shape(),
            ArrayArg::Bool(t) => t.shape(),
        }
    }

    /// A short name of the element type.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayArg::F32(_) => "float32",
            ArrayArg::F64(_) => "float64",
            ArrayArg::Int(_) => "int",
            ArrayArg::Bool(_) => "bool",
        }
    }

    fn float_dtype(&self) -> Option<DType> {
        match self {
            ArrayArg::F32(_) => Some(DType::F32),
            ArrayArg::F64(_) => Some(DType::F64),
            _ => None,
        }
    }
}

/// A result in the computation dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyTensor {
    /// float32.
    F32(Tensor<f32>),
    /// float64.
    F64(Tensor<f64>),
}

impl AnyTensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            AnyTensor::F32(t) => t.shape(),
            AnyTensor::F64(t) => t.shape(),
        }
    }

    /// The elements widened to `f64`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            AnyTensor::F32(t) => t.data().iter().map(|&v| v as f64).collect(),
            AnyTensor::F64(t) => t.data().to_vec(),
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOutput {
    /// The computation dtype.
    pub dtype: DType,
    /// The loss, in the shape the reference returns.
    pub loss: AnyTensor,
    /// Gradients of the sum of the loss, by argument name (only with `grad`).
    pub grads: Vec<(&'static str, AnyTensor)>,
}

/// A parsed option value.
#[derive(Clone, Debug, PartialEq)]
pub enum OptValue {
    /// A float.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An enum value.
    Str(String),
    /// Python's `None`.
    None,
}

/// Parses the text of option `spec` by its type (`0.5`, `inf`, `nan`, `3`, `true`, `mean`,
/// `None` where the default is `None`).
pub fn parse_option(spec: &OptionSpec, text: &str) -> Result<OptValue> {
    let bad = |what: &str| LossError::option(spec.name, format!("'{text}' is not {what}"));
    if text == "None" && (spec.default == OptDefault::None) {
        return Ok(OptValue::None);
    }
    match spec.kind {
        OptKind::Float => text.trim().parse::<f64>().map(OptValue::Float).map_err(|_| bad("a number")),
        OptKind::Int => text.trim().parse::<i64>().map(OptValue::Int).map_err(|_| bad("an integer")),
        OptKind::Bool => match text.trim() {
            "true" | "True" => Ok(OptValue::Bool(true)),
            "false" | "False" => Ok(OptValue::Bool(false)),
            _ => Err(bad("a boolean (true or false)")),
        },
        OptKind::Enum => {
            if spec.values.contains(&text) {
                Ok(OptValue::Str(text.to_string()))
            } else if text == "None" && spec.name == "reduction" && spec.values.contains(&"none") {
                Ok(OptValue::Str("none".into()))
            } else {
                Err(LossError::option(spec.name, format!("'{text}' is not one of {}", spec.values.join(", "))))
            }
        }
    }
}

/// The options of one call, every one resolved (given or default).
#[derive(Clone, Debug)]
pub struct Opts {
    spec: &'static LossSpec,
    values: Vec<(&'static str, OptValue)>,
}

impl Opts {
    /// Parses `given` (name, text) against the loss's options; absent options take their
    /// defaults; a required option that is absent is an error.
    pub fn parse(spec: &'static LossSpec, given: &[(String, String)]) -> Result<Self> {
        let mut values = Vec::new();
        for (name, text) in given {
            let o = spec.option(name).ok_or_else(|| LossError::UnknownOption {
                id: spec.id.into(),
                option: name.clone(),
                known: spec.options.iter().map(|o| o.name).collect::<Vec<_>>().join(", "),
            })?;
            if values.iter().any(|(n, _)| *n == o.name) {
                return Err(LossError::option(name, "given more than once"));
            }
            values.push((o.name, parse_option(o, text)?));
        }
        for o in spec.options {
            if values.iter().any(|(n, _)| *n == o.name) {
                continue;
            }
            if o.required {
                return Err(LossError::option(o.name, format!("is required by `{}` ({})", spec.id, o.constraints)));
            }
            let v = match o.default {
                OptDefault::Float(f) => OptValue::Float(f),
                OptDefault::Int(i) => OptValue::Int(i),
                OptDefault::Bool(b) => OptValue::Bool(b),
                OptDefault::Str(s) => OptValue::Str(s.into()),
                OptDefault::None => OptValue::None,
            };
            values.push((o.name, v));
        }
        Ok(Opts { spec, values })
    }

    fn get(&self, name: &str) -> &OptValue {
        // every option of the spec is resolved in `parse`; a loss asking for another name is a
        // bug caught by the registry tests
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v).unwrap_or(&OptValue::None)
    }

    /// A float option.
    pub fn float(&self, name: &str) -> f64 {
        match self.get(name) {
            OptValue::Float(f) => *f,
            OptValue::Int(i) => *i as f64,
            _ => f64::NAN,
        }
    }

    /// An integer option (`None` when it is Python's `None`).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            OptValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A boolean option.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), OptValue::Bool(true))
    }

    /// An enum option's text.
    pub fn text(&self, name: &str) -> &str {
        match self.get(name) {
            OptValue::Str(s) => s,
            _ => "None",
        }
    }

    /// The `reduction` option.
    pub fn reduction(&self) -> Result<Reduction> {
        self.text("reduction").parse()
    }

    /// The loss's spec.
    pub fn spec(&self) -> &'static LossSpec {
        self.spec
    }
}

/// A float-or-integer argument as a loss sees it.
#[derive(Clone, Debug)]
pub enum FloatOrInt<'a, T: Clone> {
    /// Given as floats.
    Float(View<'a, T>),
    /// Given as integers.
    Int(View<'a, i64>),
}

/// The arguments of one call, in the computation dtype `T`.
pub struct Inputs<'a, T: Clone> {
    spec: &'static LossSpec,
    args: &'a [(String, ArrayArg)],
    _t: std::marker::PhantomData<T>,
}

/// Picks the tensor of the computation dtype out of an [`ArrayArg`].
pub trait PickFloat: Float {
    /// The tensor, if `a` has this dtype.
    fn pick(a: &ArrayArg) -> Option<&Tensor<Self>>;
    /// Wraps a result.
    fn wrap(t: Tensor<Self>) -> AnyTensor;
}

impl PickFloat for f32 {
    fn pick(a: &ArrayArg) -> Option<&Tensor<f32>> {
        match a {
            ArrayArg::F32(t) => Some(t),
            _ => None,
        }
    }
    fn wrap(t: Tensor<f32>) -> AnyTensor {
        AnyTensor::F32(t)
    }
}

impl PickFloat for f64 {
    fn pick(a: &ArrayArg) -> Option<&Tensor<f64>> {
        match a {
            ArrayArg::F64(t) => Some(t),
            _ => None,
        }
    }
    fn wrap(t: Tensor<f64>) -> AnyTensor {
        AnyTensor::F64(t)
    }
}

impl<'a, T: PickFloat> Inputs<'a, T> {
    fn find(&self, name: &str) -> Option<&'a ArrayArg> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    fn missing(&self, name: &str) -> LossError {
        LossError::MissingArgument { id: self.spec.id.into(), arg: name.into() }
    }

    fn as_float(&self, name: &str, a: &'a ArrayArg) -> Result<View<'a, T>> {
        match T::pick(a) {
            Some(t) => Ok(t.view()),
            None => Err(LossError::DType {
                arg: name.into(),
                expected: format!("a float array ({})", T::DTYPE.name()),
                found: a.dtype_name().into(),
            }),
        }
    }

    /// A required float argument.
    pub fn float(&self, name: &str) -> Result<View<'a, T>> {
        let a = self.find(name).ok_or_else(|| self.missing(name))?;
        self.as_float(name, a)
    }

    /// An optional float argument.
    pub fn opt_float(&self, name: &str) -> Result<Option<View<'a, T>>> {
        self.find(name).map(|a| self.as_float(name, a)).transpose()
    }

    /// A required integer argument (bool arrays are read as 0/1).
    pub fn int(&self, name: &str) -> Result<View<'a, i64>> {
        match self.find(name).ok_or_else(|| self.missing(name))? {
            ArrayArg::Int(t) => Ok(t.view()),
            ArrayArg::Bool(t) => Ok(t.view().map(|&b| b as i64)),
            other => Err(LossError::DType {
                arg: name.into(),
                expected: "an integer array".into(),
                found: other.dtype_name().into(),
            }),
        }
    }

    /// A required argument that may be floats or integers.
    pub fn float_or_int(&self, name: &str) -> Result<FloatOrInt<'a, T>> {
        match self.find(name).ok_or_else(|| self.missing(name))? {
            ArrayArg::Int(t) => Ok(FloatOrInt::Int(t.view())),
            ArrayArg::Bool(t) => Ok(FloatOrInt::Int(t.view().map(|&b| b as i64))),
            a => Ok(FloatOrInt::Float(self.as_float(name, a)?)),
        }
    }

    /// A required argument that may be floats or integers, as floats (integers converted).
    pub fn float_lenient(&self, name: &str) -> Result<View<'a, T>> {
        Ok(match self.float_or_int(name)? {
            FloatOrInt::Float(v) => v,
            FloatOrInt::Int(v) => v.map(|&i| T::of(i as f64)),
        })
    }
}

/// The evaluator of one loss in one dtype.
pub type EvalFn<T> = fn(&Inputs<'_, T>, &Opts, Option<Backward<'_, '_, T>>) -> Result<(Tensor<T>, Grads<T>)>;

/// One registered loss.
pub struct Entry {
    /// Its metadata.
    pub spec: &'static LossSpec,
    pub(crate) f32: EvalFn<f32>,
    pub(crate) f64: EvalFn<f64>,
}

/// Builds an [`Entry`] from a spec and a generic evaluator.
macro_rules! entry {
    ($spec:expr, $eval:ident) => {
        $crate::catalog::eval::Entry { spec: &$spec, f32: $eval::<f32>, f64: $eval::<f64> }
    };
}
pub(crate) use entry;

/// The registered loss with this id.
pub fn lookup(id: &str) -> Result<&'static Entry> {
    crate::catalog::registry()
        .iter()
        .find(|e| e.spec.id == id)
        .ok_or_else(|| LossError::UnknownLoss { id: id.into(), suggestions: nearest_ids(id) })
}

/// Up to three known ids nearest to `id` (edit distance, or containing it).
pub fn nearest_ids(id: &str) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = crate::catalog::registry()
        .iter()
        .map(|e| {
            let d = edit_distance(id, e.spec.id);
            let d = if e.spec.id.contains(id) || id.contains(e.spec.id) { d.min(2) } else { d };
            (d, e.spec.id)
        })
        .collect();
    scored.sort();
    let limit = (id.len() / 2).max(3);
    scored.into_iter().filter(|(d, _)| *d <= limit).take(3).map(|(_, s)| s.to_string()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Evaluates loss `id` on named arguments and textual options; with `grad`, also the gradient
/// of the sum of the loss with respect to every given float argument whose catalogue `grad` is
/// true.
///
/// The dtype is that of the float arguments (all float32 or all float64; a mix is an error);
/// a loss given only integer arrays runs in float32. Every argument name and option name is
/// checked against the catalogue entry.
pub fn evaluate(id: &str, args: &[(String, ArrayArg)], options: &[(String, String)], grad: bool) -> Result<EvalOutput> {
    let entry = lookup(id)?;
    let spec = entry.spec;
    let mut dtype: Option<(DType, &str)> = None;
    for (i, (name, a)) in args.iter().enumerate() {
        let s = spec.arg(name).ok_or_else(|| LossError::UnknownArgument {
            id: id.into(),
            arg: name.clone(),
            known: spec.args.iter().map(|a| a.name).collect::<Vec<_>>().join(", "),
        })?;
        if args[..i].iter().any(|(n, _)| n == name) {
            return Err(LossError::value(name, "given more than once"));
        }
        match (s.kind, a.float_dtype()) {
            (ArgKind::Int, Some(_)) => {
                return Err(LossError::DType {
                    arg: name.clone(),
                    expected: "an integer array".into(),
                    found: a.dtype_name().into(),
                })
            }
            (ArgKind::Float, None) => {
                return Err(LossError::DType {
                    arg: name.clone(),
                    expected: "a float array (float32 or float64)".into(),
                    found: a.dtype_name().into(),
                })
            }
            (_, Some(d)) => match dtype {
                None => dtype = Some((d, name)),
                Some((d0, first)) if d0 != d => {
                    return Err(LossError::DType {
                        arg: name.clone(),
                        expected: format!("{} like `{first}` (all float arguments share one dtype)", d0.name()),
                        found: d.name().into(),
                    })
                }
                _ => {}
            },
            _ => {}
        }
    }
    for a in spec.args {
        if !a.optional && !args.iter().any(|(n, _)| n == a.name) {
            return Err(LossError::MissingArgument { id: id.into(), arg: a.name.into() });
        }
    }
    let opts = Opts::parse(spec, options)?;
    let dtype = dtype.map(|(d, _)| d).unwrap_or(DType::F32);
    match dtype {
        DType::F32 => run(entry.f32, spec, args, &opts, grad),
        DType::F64 => run(entry.f64, spec, args, &opts, grad),
    }
}

fn run<T: PickFloat>(
    f: EvalFn<T>,
    spec: &'static LossSpec,
    args: &[(String, ArrayArg)],
    opts: &Opts,
    grad: bool,
) -> Result<EvalOutput> {
    let inputs = Inputs::<T> { spec, args, _t: std::marker::PhantomData };
    let (loss, grads) = f(&inputs, opts, grad.then(Backward::new))?;
    let mut out = Vec::new();
    if grad {
        // only float arguments get a gradient file; keep catalogue order
        for a in spec.args {
            if let Some(g) = grads.get(a.name) {
                let given_float = args.iter().any(|(n, x)| n == a.name && T::pick(x).is_some());
                if a.grad && given_float {
                    out.push((a.name, T::wrap(g.clone())));
                }
            }
        }
    }
    Ok(EvalOutput { dtype: T::DTYPE, loss: T::wrap(loss), grads: out })
}
