//! Values and gradients against the reference libraries, through `catalog::evaluate`, on the
//! committed fixtures `fixtures/reference/<id>.json` (made by `tools/fixtures/generate.py` with
//! PyTorch, Keras 3 on JAX and optax; this test needs none of them).
//!
//! Every case runs twice: with the float arguments as float64 (compared at 1e-9) and rounded to
//! float32 (compared at 2e-5 with the float64 reference on the rounded inputs, rounded to
//! float32). Integer arguments are `ArrayArg::Int`. The loss's shape and every gradient the
//! fixture holds must match, NaN and infinities in place. Every failing (id, case, dtype) is
//! reported at the end; a fixture whose id is not registered, or a registered id without a
//! fixture, is a failure too.

mod common;

use common::{compare, load_fixtures, registered_ids, tol, widen, Dtype, FixCase};
use losskit::catalog::evaluate;

/// Checks one case in one dtype; the problems found (empty when it passes).
fn check(id: &str, case: &FixCase, dtype: Dtype) -> Vec<String> {
    let args = case.arrays(dtype);
    let want = case.expected(dtype);
    let out = match evaluate(id, &args, &case.options, true) {
        Ok(o) => o,
        Err(e) => return vec![format!("error: {e}")],
    };
    let mut problems = Vec::new();
    let dt = out.dtype.name();
    let want_dt = if dtype == Dtype::F64 { "float64" } else { "float32" };
    if dt != want_dt {
        problems.push(format!("computed in {dt}, expected {want_dt}"));
    }
    let (shape, data) = widen(&out.loss);
    if shape != want.loss.shape {
        problems.push(format!("loss shape {shape:?}, expected {:?}", want.loss.shape));
    } else if let Err(m) = compare(&data, &want.loss.data, tol(dtype)) {
        problems.push(format!("loss: {m}"));
    }
    for (name, g) in &want.grads {
        match out.grads.iter().find(|(n, _)| n == name) {
            None => problems.push(format!("no gradient for `{name}`")),
            Some((_, t)) => {
                let (shape, data) = widen(t);
                if shape != g.shape {
                    problems.push(format!("gradient of `{name}`: shape {shape:?}, expected {:?}", g.shape));
                } else if let Err(m) = compare(&data, &g.data, tol(dtype)) {
                    problems.push(format!("gradient of `{name}`: {m}"));
                }
            }
        }
    }
    for (name, _) in &out.grads {
        if !want.grads.iter().any(|(n, _)| n == name) {
            problems.push(format!("unexpected gradient for `{name}` (the reference has none)"));
        }
    }
    problems
}

#[test]
fn fixtures_match_the_references() {
    let fixtures = load_fixtures();
    let registered = registered_ids();
    let mut failures = Vec::new();
    let (mut checked, mut passed) = (0usize, 0usize);
    for fx in &fixtures {
        if !registered.contains(&fx.id.as_str()) {
            failures.push(format!("{}: {} exists but the id is not registered", fx.id, fx.file));
            continue;
        }
        for case in &fx.cases {
            for dtype in [Dtype::F64, Dtype::F32] {
                checked += 1;
                let problems = check(&fx.id, case, dtype);
                if problems.is_empty() {
                    passed += 1;
                } else {
                    failures.push(format!("{} [{}] {}: {}", fx.id, case.label, dtype.name(), problems.join("; ")));
                }
            }
        }
    }
    for id in &registered {
        if !fixtures.iter().any(|f| f.id == *id) {
            failures.push(format!("{id}: registered but has no fixture (run tools/fixtures/generate.py)"));
        }
    }
    eprintln!("reference fixtures: {passed} of {checked} (id, case, dtype) checks passed");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
