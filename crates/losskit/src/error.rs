//! [`LossError`]: the one error type of the crate.

/// Every way an input can be invalid. Each variant names the argument or option at fault and
/// says what was expected and what was found; no input makes a loss panic.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LossError {
    /// An argument's shape does not fit (the other arguments, the loss, or an option).
    #[error("argument `{arg}`: shape {} does not fit: expected {expected}", crate::tensor::fmt_shape(.found))]
    Shape {
        /// The argument at fault.
        arg: String,
        /// What shape was expected, in words.
        expected: String,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A class index (or other index argument) lies outside its valid range.
    #[error("argument `{arg}`: index {index} at flat position {position} is out of range (valid: {valid})")]
    IndexOutOfRange {
        /// The argument at fault.
        arg: String,
        /// The offending value.
        index: i64,
        /// Its flat (C-order) position in the argument.
        position: usize,
        /// The valid range, in words (e.g. `0 <= index < 5 or == ignore_index -100`).
        valid: String,
    },
    /// An argument holds a value outside its domain (e.g. a probability above 1).
    #[error("argument `{arg}`: {problem}")]
    InvalidValue {
        /// The argument at fault.
        arg: String,
        /// What is wrong.
        problem: String,
    },
    /// An option's value is outside its domain, or not valid for this loss.
    #[error("option `{option}`: {problem}")]
    InvalidOption {
        /// The option at fault.
        option: String,
        /// What is wrong.
        problem: String,
    },
    /// A required argument was not given.
    #[error("argument `{arg}` is required by `{id}` but was not given")]
    MissingArgument {
        /// The loss id.
        id: String,
        /// The missing argument.
        arg: String,
    },
    /// An argument name the loss does not have.
    #[error("`{id}` has no argument `{arg}` (its arguments: {known})")]
    UnknownArgument {
        /// The loss id.
        id: String,
        /// The unknown name.
        arg: String,
        /// The loss's argument names, comma-separated.
        known: String,
    },
    /// An option name the loss does not have.
    #[error("`{id}` has no option `{option}` (its options: {known})")]
    UnknownOption {
        /// The loss id.
        id: String,
        /// The unknown name.
        option: String,
        /// The loss's option names, comma-separated.
        known: String,
    },
    /// An id that is not in the catalogue.
    #[error("unknown loss id `{id}`{}", suggest(.suggestions))]
    UnknownLoss {
        /// The id that was asked for.
        id: String,
        /// The nearest known ids.
        suggestions: Vec<String>,
    },
    /// An argument of the wrong element type (an integer where a float is needed, mixed float
    /// widths, ...).
    #[error("argument `{arg}`: dtype {found} where {expected} is needed")]
    DType {
        /// The argument at fault.
        arg: String,
        /// The dtype(s) that would be accepted.
        expected: String,
        /// The dtype given.
        found: String,
    },
    /// A caller-provided gradient buffer of the wrong length.
    #[error("gradient buffer for `{arg}`: length {found}, expected {expected}")]
    GradBuffer {
        /// The argument the buffer is for.
        arg: String,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// An upstream gradient whose shape is not the loss's shape.
    #[error("upstream gradient: shape {} does not fit the loss's shape {}", crate::tensor::fmt_shape(.found), crate::tensor::fmt_shape(.expected))]
    Upstream {
        /// The shape of the loss.
        expected: Vec<usize>,
        /// The shape given.
        found: Vec<usize>,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean: {}?)", s.join(", "))
    }
}

/// The crate's result type.
pub type Result<T, E = LossError> = std::result::Result<T, E>;

impl LossError {
    pub(crate) fn shape(arg: &str, expected: impl Into<String>, found: &[usize]) -> Self {
        LossError::Shape { arg: arg.to_string(), expected: expected.into(), found: found.to_vec() }
    }
    pub(crate) fn value(arg: &str, problem: impl Into<String>) -> Self {
        LossError::InvalidValue { arg: arg.to_string(), problem: problem.into() }
    }
    pub(crate) fn option(option: &str, problem: impl Into<String>) -> Self {
        LossError::InvalidOption { option: option.to_string(), problem: problem.into() }
    }
}
