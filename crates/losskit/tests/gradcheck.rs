//! Analytic gradients against central finite differences, in float64, for every registered
//! loss on the inputs of its reference fixtures (`fixtures/reference/<id>.json`).
//!
//! For every float argument whose catalogue `grad` is true, every element `x` is moved by
//! `h = 1e-6 * max(|x|, 1e-3)` and the central difference of `S = sum(loss)` is compared with the
//! analytic gradient of `S` (what `catalog::evaluate(.., grad = true)` returns):
//! `|fd - g| <= 1e-6 * max|g| + 1e-7 + rounding`, where `rounding` bounds the cancellation error
//! of the difference (`16 eps sum|loss| / h`).
//!
//! Skipped, and counted as such:
//! - a case whose loss or analytic gradient has a NaN or an infinity (the gradient is not
//!   defined there: 0/0 means, all -inf slices, the torch BCE target gradient at 0 and 1);
//! - an element that is not finite, or whose perturbation leaves the loss's domain (an error,
//!   or a non-finite loss: a probability pushed below 0);
//! - an element where the two one-sided differences disagree, and keep disagreeing as the step
//!   goes down by factors of 10 (to 1e-9): a kink or a clip boundary (ties `x == y` of l1,
//!   probabilities exactly 0 or 1), where the reference's convention is checked by the fixture
//!   test instead. (A gap that shrinks with the step while the central differences of two
//!   steps agree is curvature: that step is used.)
//!
//! Every registered id must get at least one checked element, else the test fails.

mod common;

use common::{load_fixtures, registered_ids, Dtype, FixCase};
use losskit::catalog::{self, evaluate, ArrayArg};

const REL_TOL: f64 = 1e-6;
const ABS_TOL: f64 = 1e-7;
const KINK_TOL: f64 = 1e-3;
/// Steps relative to `max(|x|, 1e-3)`, tried in turn (a smaller step where the function
/// varies on a smaller scale than the input, e.g. `x ~ 1e6` with `x - y ~ 1e-2`).
const STEPS: [f64; 4] = [1e-6, 1e-7, 1e-8, 1e-9];

/// Sum of the loss and the sum of its absolute values, or None on an error or a non-finite loss.
fn loss_sum(id: &str, args: &[(String, ArrayArg)], options: &[(String, String)]) -> Option<(f64, f64)> {
    let out = evaluate(id, args, options, false).ok()?;
    let v = out.loss.to_f64_vec();
    let s: f64 = v.iter().sum();
    let a: f64 = v.iter().map(|x| x.abs()).sum();
    s.is_finite().then_some((s, a))
}

fn f64_data(a: &mut ArrayArg) -> &mut [f64] {
    match a {
        ArrayArg::F64(t) => t.data_mut(),
        _ => unreachable!("only float64 arguments are perturbed"),
    }
}

#[derive(Default)]
struct Tally {
    checked_cases: usize,
    checked_elements: usize,
    skipped_cases: Vec<String>,
    skipped_elements: usize,
    failures: Vec<String>,
}

fn check_case(id: &str, case: &FixCase, tally: &mut Tally) {
    let spec = catalog::lookup(id).expect("registered").spec;
    let args = case.arrays(Dtype::F64);
    let out = match evaluate(id, &args, &case.options, true) {
        Ok(o) => o,
        Err(e) => {
            tally.skipped_cases.push(format!("{id} [{}]: evaluation failed: {e}", case.label));
            return;
        }
    };
    let loss = out.loss.to_f64_vec();
    let grads: Vec<(&str, Vec<f64>)> = out.grads.iter().map(|(n, t)| (*n, t.to_f64_vec())).collect();
    if loss.iter().any(|v| !v.is_finite()) || grads.iter().any(|(_, g)| g.iter().any(|v| !v.is_finite())) {
        tally.skipped_cases.push(format!("{id} [{}]: non-finite loss or gradient", case.label));
        return;
    }
    let s0: f64 = loss.iter().sum();
    let mut any = false;
    for (name, g) in &grads {
        if !spec.arg(name).is_some_and(|a| a.grad) {
            continue;
        }
        let k = args.iter().position(|(n, _)| n == name).expect("a gradient is for a given argument");
        let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut work = args.clone();
        let mut worst: Option<(f64, String)> = None;
        for (j, &gj) in g.iter().enumerate() {
            let x = f64_data(&mut work[k].1)[j];
            if !x.is_finite() {
                tally.skipped_elements += 1;
                continue;
            }
            // Down the ladder of steps: accept a step where the one-sided differences agree,
            // or where their gap shrank with the step (curvature, not a kink) and the central
            // difference agrees with the previous step's. A gap that does not shrink is a kink.
            let mut found = None;
            let mut previous: Option<(f64, f64)> = None; // (gap, central difference)
            for rel in STEPS {
                let h = rel * x.abs().max(1e-3);
                let mut at = |v: f64| {
                    f64_data(&mut work[k].1)[j] = v;
                    loss_sum(id, &work, &case.options)
                };
                let (plus, minus) = (at(x + h), at(x - h));
                f64_data(&mut work[k].1)[j] = x;
                let (Some((sp, ap)), Some((sm, am))) = (plus, minus) else {
                    previous = None;
                    continue;
                };
                let rounding = 16.0 * f64::EPSILON * (ap + am) / (2.0 * h);
                let (fwd, bwd, central) = ((sp - s0) / h, (s0 - sm) / h, (sp - sm) / (2.0 * h));
                let gap = (fwd - bwd).abs();
                let agree = gap <= KINK_TOL * (scale + fwd.abs().max(bwd.abs())) + 4.0 * rounding + ABS_TOL;
                let smooth = previous.is_some_and(|(g0, c0)| {
                    gap <= 0.2 * g0 && (central - c0).abs() <= REL_TOL * scale + ABS_TOL + 2.0 * rounding
                });
                if agree || smooth {
                    found = Some((central, rounding));
                    break;
                }
                previous = Some((gap, central));
            }
            let Some((fd, rounding)) = found else {
                tally.skipped_elements += 1;
                continue;
            };
            let err = (fd - gj).abs();
            let allowed = REL_TOL * scale + ABS_TOL + rounding;
            any = true;
            tally.checked_elements += 1;
            if err > allowed {
                let msg = format!("d/d{name}[{j}]: finite difference {fd:.12e}, analytic {gj:.12e}");
                let worse = match &worst {
                    None => true,
                    Some((e, _)) => err / allowed > *e,
                };
                if worse {
                    worst = Some((err / allowed, msg));
                }
            }
        }
        if let Some((ratio, msg)) = worst {
            tally.failures.push(format!("{id} [{}]: {msg} ({ratio:.1}x the tolerance)", case.label));
        }
    }
    if any {
        tally.checked_cases += 1;
    } else {
        tally.skipped_cases.push(format!("{id} [{}]: no element could be checked", case.label));
    }
}

#[test]
fn analytic_gradients_match_finite_differences() {
    let fixtures = load_fixtures();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for id in registered_ids() {
        let Some(fx) = fixtures.iter().find(|f| f.id == id) else {
            failures.push(format!("{id}: no fixture to take inputs from"));
            continue;
        };
        let mut tally = Tally::default();
        for case in &fx.cases {
            check_case(id, case, &mut tally);
        }
        report.push(format!(
            "{id}: {} case(s), {} element(s) checked; {} element(s) skipped",
            tally.checked_cases, tally.checked_elements, tally.skipped_elements
        ));
        report.extend(tally.skipped_cases.iter().map(|s| format!("  skipped {s}")));
        if tally.checked_cases == 0 {
            failures.push(format!("{id}: no case could be checked"));
        }
        failures.extend(tally.failures);
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
