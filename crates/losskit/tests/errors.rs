//! One test per kind of [`LossError`]: the variant, the argument or option it names, and a
//! message that names it too. Through `catalog::evaluate` (what the command line calls) where
//! the error can arise there, else through the typed API.

use losskit::catalog::{evaluate, ArrayArg, EvalOutput};
use losskit::{mse_grad, Backward, GradsMut, LossError, MseOptions, Reduction, Tensor, Upstream, View};

fn f64s(data: &[f64]) -> ArrayArg {
    ArrayArg::F64(Tensor::new(data.to_vec(), vec![data.len()]).unwrap())
}

fn f32s(data: &[f32]) -> ArrayArg {
    ArrayArg::F32(Tensor::new(data.to_vec(), vec![data.len()]).unwrap())
}

fn ints(data: &[i64], shape: &[usize]) -> ArrayArg {
    ArrayArg::Int(Tensor::new(data.to_vec(), shape.to_vec()).unwrap())
}

fn f64_shaped(data: &[f64], shape: &[usize]) -> ArrayArg {
    ArrayArg::F64(Tensor::new(data.to_vec(), shape.to_vec()).unwrap())
}

fn eval(id: &str, args: Vec<(&str, ArrayArg)>, options: &[(&str, &str)]) -> Result<EvalOutput, LossError> {
    let args: Vec<(String, ArrayArg)> = args.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
    let options: Vec<(String, String)> = options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    evaluate(id, &args, &options, true)
}

/// A valid mse/l1/huber/smooth_l1 argument pair of length 3.
fn pair() -> Vec<(&'static str, ArrayArg)> {
    vec![("input", f64s(&[1.0, 2.0, 3.0])), ("target", f64s(&[0.5, 2.5, 2.0]))]
}

/// The error of a call that must fail, and its message.
fn fails(r: Result<EvalOutput, LossError>) -> (LossError, String) {
    match r {
        Ok(o) => panic!("expected an error, got a loss of shape {:?}", o.loss.shape()),
        Err(e) => {
            let m = e.to_string();
            (e, m)
        }
    }
}

#[test]
fn unknown_loss_suggests_the_nearest_ids() {
    let (e, m) = fails(eval("mes", pair(), &[]));
    match e {
        LossError::UnknownLoss { id, suggestions } => {
            assert_eq!(id, "mes");
            assert!(suggestions.iter().any(|s| s == "mse"), "suggestions {suggestions:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(m.contains("mes") && m.contains("mse"), "{m}");
    let (e, m) = fails(eval("smooth_l", pair(), &[]));
    assert!(matches!(&e, LossError::UnknownLoss { suggestions, .. } if suggestions.iter().any(|s| s == "smooth_l1")));
    assert!(m.contains("smooth_l1"), "{m}");
}

#[test]
fn unknown_argument_is_named_with_the_known_ones() {
    let mut args = pair();
    args.push(("weights", f64s(&[1.0, 1.0, 1.0])));
    let (e, m) = fails(eval("mse", args, &[]));
    assert!(matches!(&e, LossError::UnknownArgument { id, arg, .. } if id == "mse" && arg == "weights"), "{e:?}");
    assert!(m.contains("`weights`") && m.contains("weight"), "{m}");
}

#[test]
fn missing_argument_is_named() {
    let (e, m) = fails(eval("huber", vec![("input", f64s(&[1.0]))], &[]));
    assert!(matches!(&e, LossError::MissingArgument { id, arg } if id == "huber" && arg == "target"), "{e:?}");
    assert!(m.contains("`target`") && m.contains("huber"), "{m}");
}

#[test]
fn unknown_option_is_named_with_the_known_ones() {
    let (e, m) = fails(eval("mse", pair(), &[("delta", "1.0")]));
    assert!(matches!(&e, LossError::UnknownOption { id, option, .. } if id == "mse" && option == "delta"), "{e:?}");
    assert!(m.contains("`delta`") && m.contains("reduction"), "{m}");
}

#[test]
fn bad_option_values_are_named() {
    // an enum value that is not in the catalogue
    let (e, m) = fails(eval("l1", pair(), &[("reduction", "average")]));
    assert!(matches!(&e, LossError::InvalidOption { option, .. } if option == "reduction"), "{e:?}");
    assert!(m.contains("`reduction`") && m.contains("average"), "{m}");
    // a float option that is not a number
    let (e, m) = fails(eval("huber", pair(), &[("delta", "one")]));
    assert!(matches!(&e, LossError::InvalidOption { option, .. } if option == "delta"), "{e:?}");
    assert!(m.contains("`delta`") && m.contains("one"), "{m}");
    // the same option twice
    let (e, m) = fails(eval("smooth_l1", pair(), &[("beta", "0.5"), ("beta", "1.0")]));
    assert!(matches!(&e, LossError::InvalidOption { option, .. } if option == "beta"), "{e:?}");
    assert!(m.contains("`beta`"), "{m}");
}

#[test]
fn options_outside_their_domain_are_named() {
    for (id, option, value) in
        [("huber", "delta", "-1"), ("huber", "delta", "0"), ("huber", "delta", "nan"), ("smooth_l1", "beta", "-0.5")]
    {
        let (e, m) = fails(eval(id, pair(), &[(option, value)]));
        assert!(
            matches!(&e, LossError::InvalidOption { option: o, .. } if o == option),
            "{id} {option}={value}: {e:?}"
        );
        assert!(m.contains(&format!("`{option}`")), "{m}");
    }
}

#[test]
fn shape_mismatches_name_the_argument() {
    let (e, m) = fails(eval("mse", vec![("input", f64s(&[1.0, 2.0, 3.0])), ("target", f64s(&[1.0, 2.0]))], &[]));
    assert!(matches!(&e, LossError::Shape { arg, found, .. } if arg == "target" && found == &[2]), "{e:?}");
    assert!(m.contains("`target`") && m.contains("(2,)") && m.contains("(3,)"), "{m}");
    let mut args = pair();
    args.push(("weight", f64_shaped(&[1.0, 1.0, 1.0], &[3, 1])));
    let (e, m) = fails(eval("huber", args, &[]));
    assert!(matches!(&e, LossError::Shape { arg, .. } if arg == "weight"), "{e:?}");
    assert!(m.contains("`weight`"), "{m}");
}

#[test]
fn class_indices_out_of_range_are_errors() {
    // C = 3: 3 is out of range (torch raises); -3 is neither a class nor the ignore_index
    let input = f64_shaped(&[0.1, -0.2, 0.3, 0.0, 1.0, -1.0], &[2, 3]);
    for id in ["nll", "cross_entropy"] {
        for (bad, pos) in [(3i64, 1usize), (-3, 0)] {
            let target = if pos == 1 { ints(&[0, bad], &[2]) } else { ints(&[bad, 1], &[2]) };
            let (e, m) = fails(eval(id, vec![("input", input.clone()), ("target", target)], &[]));
            assert!(
                matches!(&e, LossError::IndexOutOfRange { arg, index, position, .. }
                    if arg == "target" && *index == bad && *position == pos),
                "{id} target {bad}: {e:?}"
            );
            assert!(m.contains("`target`") && m.contains(&bad.to_string()), "{m}");
        }
    }
}

#[test]
fn integer_array_where_a_float_is_needed() {
    let (e, m) = fails(eval("mse", vec![("input", ints(&[1, 2, 3], &[3])), ("target", f64s(&[1.0, 2.0, 3.0]))], &[]));
    assert!(matches!(&e, LossError::DType { arg, found, .. } if arg == "input" && found == "int"), "{e:?}");
    assert!(m.contains("`input`") && m.contains("float"), "{m}");
}

#[test]
fn mixed_float_widths_are_an_error() {
    let (e, m) = fails(eval("l1", vec![("input", f32s(&[1.0, 2.0])), ("target", f64s(&[1.0, 2.0]))], &[]));
    assert!(
        matches!(&e, LossError::DType { arg, expected, found }
            if arg == "target" && found == "float64" && expected.contains("float32")),
        "{e:?}"
    );
    assert!(m.contains("`target`") && m.contains("float64") && m.contains("float32"), "{m}");
}

#[test]
fn gradient_buffers_must_have_the_argument_length() {
    let x = [1.0f64, 2.0, 3.0];
    let y = [0.0f64, 0.0, 0.0];
    let mut short = [0.0f64; 2];
    let r = mse_grad(
        View::from(&x[..]),
        View::from(&y[..]),
        None,
        &MseOptions::default(),
        Backward::new().into_buffers(GradsMut::new().with("input", &mut short)),
    );
    let e = r.expect_err("a buffer of the wrong length is an error");
    assert!(matches!(&e, LossError::GradBuffer { arg, expected: 3, found: 2 } if arg == "input"), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("`input`") && m.contains('3') && m.contains('2'), "{m}");
    // a buffer for an argument that is absent (no weight given) is an error too
    let mut w = [0.0f64; 3];
    let r = mse_grad(
        View::from(&x[..]),
        View::from(&y[..]),
        None,
        &MseOptions::default(),
        Backward::new().into_buffers(GradsMut::new().with("weight", &mut w)),
    );
    let e = r.expect_err("a buffer for an absent argument is an error");
    assert!(matches!(&e, LossError::InvalidValue { arg, .. } if arg == "weight"), "{e:?}");
}

#[test]
fn upstream_gradient_must_have_the_loss_shape() {
    let x = [1.0f64, 2.0, 3.0];
    let y = [0.0f64, 0.0, 0.0];
    let up = [1.0f64, 1.0];
    let opts = MseOptions { reduction: Reduction::None };
    let r = mse_grad(
        View::from(&x[..]),
        View::from(&y[..]),
        None,
        &opts,
        Backward::new().upstream(Upstream::Array(View::from(&up[..]))),
    );
    let e = r.expect_err("an upstream of the wrong shape is an error");
    assert!(matches!(&e, LossError::Upstream { expected, found } if expected == &[3] && found == &[2]), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("upstream") && m.contains("(2,)") && m.contains("(3,)"), "{m}");
    // a reduced loss takes a 0-d (or one-element) upstream, not a per-element one
    let r = mse_grad(
        View::from(&x[..]),
        View::from(&y[..]),
        None,
        &MseOptions::default(),
        Backward::new().upstream(Upstream::Array(View::from(&x[..]))),
    );
    assert!(matches!(r, Err(LossError::Upstream { .. })), "{r:?}");
}

#[test]
fn arguments_given_twice_are_named() {
    let mut args = pair();
    args.push(("input", f64s(&[1.0, 2.0, 3.0])));
    let (e, m) = fails(eval("mse", args, &[]));
    assert!(matches!(&e, LossError::InvalidValue { arg, .. } if arg == "input"), "{e:?}");
    assert!(m.contains("`input`"), "{m}");
}

#[test]
fn class_labels_out_of_range_are_errors_even_where_the_reference_accepts_them() {
    // Keras (jax) gives such labels loss 0 and optax an all-zero one-hot row; the contract
    // rejects them (CLI.md: index arguments outside their range are an error for every loss)
    let scores = f64_shaped(&[0.1, -0.2, 0.3, 0.0, 1.0, -1.0], &[2, 3]);
    for (id, label_arg, score_arg) in
        [("sparse_categorical_crossentropy", "y_true", "y_pred"), ("multiclass_hinge", "labels", "scores")]
    {
        for bad in [3i64, -1] {
            let (e, m) = fails(eval(id, vec![(label_arg, ints(&[0, bad], &[2])), (score_arg, scores.clone())], &[]));
            assert!(
                matches!(&e, LossError::IndexOutOfRange { arg, index, position: 1, .. }
                    if arg == label_arg && *index == bad),
                "{id} label {bad}: {e:?}"
            );
            assert!(m.contains(&format!("`{label_arg}`")), "{m}");
        }
    }
}
