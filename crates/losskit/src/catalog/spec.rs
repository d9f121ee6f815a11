//! The metadata of one loss, as plain `'static` data.

/// The loss families of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Regression losses.
    Regression,
    /// Losses between distributions or under a likelihood.
    Probabilistic,
    /// Classification losses (and `log_softmax`).
    Classification,
    /// Margin (hinge-type) losses.
    Margin,
    /// Embedding and similarity losses.
    Embedding,
    /// Ranking losses.
    Ranking,
    /// Segmentation losses.
    Segmentation,
    /// Sequence losses.
    Sequence,
    /// Self-supervised losses.
    SelfSupervised,
}

impl Family {
    /// The catalogue's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Family::Regression => "regression",
            Family::Probabilistic => "probabilistic",
            Family::Classification => "classification",
            Family::Margin => "margin",
            Family::Embedding => "embedding",
            Family::Ranking => "ranking",
            Family::Segmentation => "segmentation",
            Family::Sequence => "sequence",
            Family::SelfSupervised => "self_supervised",
        }
    }
}

/// The element type an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Floating point (the computation dtype).
    Float,
    /// Integer (class indices); any integer dtype, or bool.
    Int,
    /// Either: integer labels or floats, depending on the loss's mode.
    FloatOrInt,
}

impl ArgKind {
    /// The catalogue's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::Float => "float",
            ArgKind::Int => "int",
            ArgKind::FloatOrInt => "float_or_int",
        }
    }
}

/// One argument of a loss.
#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    /// The reference's own argument name.
    pub name: &'static str,
    /// The shapes it takes, in words.
    pub shape: &'static str,
    /// Its element type.
    pub kind: ArgKind,
    /// Whether its gradient is part of the contract.
    pub grad: bool,
    /// Whether it may be omitted.
    pub optional: bool,
    /// Valid values, in words.
    pub constraints: &'static str,
}

/// The type of an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// A float.
    Float,
    /// An integer.
    Int,
    /// `true` / `false`.
    Bool,
    /// One of a fixed set of strings.
    Enum,
}

impl OptKind {
    /// The catalogue's spelling.
    pub fn name(self) -> &'static str {
        match self {
            OptKind::Float => "float",
            OptKind::Int => "int",
            OptKind::Bool => "bool",
            OptKind::Enum => "enum",
        }
    }
}

/// An option's default, as the reference has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptDefault {
    /// A float default.
    Float(f64),
    /// An integer default.
    Int(i64),
    /// A boolean default.
    Bool(bool),
    /// An enum default.
    Str(&'static str),
    /// Python's `None` (written `"None"` in the catalogue).
    None,
}

/// One option of a loss.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// The reference's own keyword name.
    pub name: &'static str,
    /// Its type.
    pub kind: OptKind,
    /// Its default.
    pub default: OptDefault,
    /// The allowed values of an enum, in the catalogue's order.
    pub values: &'static [&'static str],
    /// Valid values, in words.
    pub constraints: &'static str,
    /// Whether the contract requires it to be given (the reference's default is deprecated).
    pub required: bool,
}

/// Everything losskit states about one loss: the data behind `losskit list` and `explain`,
/// and the dispatch of `eval`.
#[derive(Clone, Copy, Debug)]
pub struct LossSpec {
    /// The canonical id (the function's name and the CLI name).
    pub id: &'static str,
    /// Its family.
    pub family: Family,
    /// One sentence.
    pub summary: &'static str,
    /// The formula, in LaTeX.
    pub formula: &'static str,
    /// The one reference call whose values and gradients it reproduces.
    pub reference: &'static str,
    /// That call, as Python.
    pub reference_call: &'static str,
    /// The default reduction (`none` for losses without one).
    pub reduction_default: &'static str,
    /// The shape of the unreduced loss.
    pub none_shape: &'static str,
    /// Conventions and traps, in words.
    pub conventions: &'static str,
    /// Where the blog post the project started from gets this loss wrong ("" when it does not
    /// name it).
    pub errata: &'static str,
    /// The arguments, in the reference's positional order.
    pub args: &'static [ArgSpec],
    /// The options.
    pub options: &'static [OptionSpec],
}

impl LossSpec {
    /// The argument called `name`.
    pub fn arg(&self, name: &str) -> Option<&'static ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The option called `name`.
    pub fn option(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Shorthand constructors for the static tables of the loss modules.
pub(crate) mod build {
    use super::*;

    pub(crate) const fn arg(
        name: &'static str,
        shape: &'static str,
        kind: ArgKind,
        grad: bool,
        optional: bool,
        constraints: &'static str,
    ) -> ArgSpec {
        ArgSpec { name, shape, kind, grad, optional, constraints }
    }

    pub(crate) const fn opt(
        name: &'static str,
        kind: OptKind,
        default: OptDefault,
        constraints: &'static str,
    ) -> OptionSpec {
        OptionSpec { name, kind, default, values: &[], constraints, required: false }
    }

    /// PyTorch's `reduction` option with default `default`.
    pub(crate) const fn torch_reduction(default: &'static str) -> OptionSpec {
        OptionSpec {
            name: "reduction",
            kind: OptKind::Enum,
            default: OptDefault::Str(default),
            values: &["none", "mean", "sum"],
            constraints: "one of none, mean, sum",
            required: false,
        }
    }

    /// Keras' `reduction` option, values in the order `sum_over_batch_size, sum, mean,
    /// mean_with_sample_weight, none`.
    pub(crate) const KERAS_REDUCTION: OptionSpec = OptionSpec {
        name: "reduction",
        kind: OptKind::Enum,
        default: OptDefault::Str("sum_over_batch_size"),
        values: &["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"],
        constraints: "'mean' is the same as 'sum_over_batch_size'; Python None is read as 'none'",
        required: false,
    };

    /// Keras' `reduction` option as listed for the margin and embedding entries (same values,
    /// order `sum_over_batch_size, mean, mean_with_sample_weight, sum, none`).
    pub(crate) const KERAS_REDUCTION_ALT: OptionSpec = OptionSpec {
        values: &["sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none"],
        ..KERAS_REDUCTION
    };

    /// Keras' `sample_weight` argument of `Loss.__call__`.
    pub(crate) const KERAS_SAMPLE_WEIGHT: ArgSpec = ArgSpec {
        name: "sample_weight",
        shape: "broadcastable to the per-sample loss (e.g. (N,) or (N, 1) for (N, D) inputs)",
        kind: ArgKind::Float,
        grad: false,
        optional: true,
        constraints: "multiplies the per-sample losses before the reduction; a rank differing by one with a trailing 1 is squeezed or expanded first",
    };
}
