//! Property tests of identities between losses, reductions, dtypes and the gradient plumbing,
//! on random inputs (proptest).

mod common;

use common::{compare, TOL32};
use losskit::catalog::{evaluate, ArrayArg};
use losskit::{
    huber, huber_grad, l1, mse, mse_grad, smooth_l1_grad, Backward, GradsMut, HuberOptions, L1Options, MseOptions,
    Reduction, SmoothL1Options, Tensor, Upstream, View,
};
use proptest::prelude::*;

const CASES: u32 = 128;

/// Elementwise `|a - b| <= rel * max(|a|, |b|, 1)`.
fn close(a: &[f64], b: &[f64], rel: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let s = x.abs().max(y.abs()).max(1.0);
        prop_assert!((x - y).abs() <= rel * s, "at {}: {} vs {}", i, x, y);
    }
    Ok(())
}

/// Two same-length vectors of moderate values (and a shape for them).
fn pair() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..40).prop_flat_map(|n| (prop::collection::vec(-5.0f64..5.0, n), prop::collection::vec(-5.0f64..5.0, n)))
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![Just(Reduction::None), Just(Reduction::Mean), Just(Reduction::Sum)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// huber(delta) = delta * smooth_l1(beta = delta), values and gradients, elementwise.
    #[test]
    fn huber_is_delta_times_smooth_l1((x, y) in pair(), delta in 0.01f64..10.0) {
        let hopts = HuberOptions { reduction: Reduction::None, delta };
        let sopts = SmoothL1Options { reduction: Reduction::None, beta: delta };
        let (h, hg) = huber_grad(View::from(&x), View::from(&y), None, &hopts, Backward::new()).unwrap();
        let (s, sg) = smooth_l1_grad(View::from(&x), View::from(&y), &sopts, Backward::new()).unwrap();
        let scaled: Vec<f64> = s.data().iter().map(|v| v * delta).collect();
        close(h.data(), &scaled, 1e-13)?;
        for name in ["input", "target"] {
            let g: Vec<f64> = sg.get(name).unwrap().data().iter().map(|v| v * delta).collect();
            close(hg.get(name).unwrap().data(), &g, 1e-13)?;
        }
    }

    /// 'sum' = n * 'mean' and 'sum' = sum of 'none' (no weight); a weight of ones changes nothing.
    #[test]
    fn reductions_agree((x, y) in pair()) {
        let n = x.len() as f64;
        let run = |reduction, w: Option<&Vec<f64>>| {
            mse(View::from(&x), View::from(&y), w.map(View::from), &MseOptions { reduction }).unwrap()
        };
        let none = run(Reduction::None, None);
        let sum = run(Reduction::Sum, None).item().unwrap();
        let mean = run(Reduction::Mean, None).item().unwrap();
        close(&[sum], &[n * mean], 1e-13)?;
        close(&[sum], &[none.data().iter().sum::<f64>()], 1e-13)?;
        let ones = vec![1.0; x.len()];
        close(&[run(Reduction::Mean, Some(&ones)).item().unwrap()], &[mean], 1e-13)?;
        let l1_plain = l1(View::from(&x), View::from(&y), None, &L1Options::default()).unwrap();
        let l1_ones = l1(View::from(&x), View::from(&y), Some(View::from(&ones)), &L1Options::default()).unwrap();
        close(l1_plain.data(), l1_ones.data(), 1e-13)?;
    }

    /// Gradients written into caller buffers are the allocated ones, bit for bit; buffers
    /// are overwritten (not accumulated into).
    #[test]
    fn buffers_equal_allocated_gradients((x, y) in pair(), red in reduction(), weighted in any::<bool>()) {
        let w: Vec<f64> = x.iter().map(|v| 0.5 + v.abs()).collect();
        let w = weighted.then_some(&w);
        let opts = MseOptions { reduction: red };
        let (loss, grads) = mse_grad(View::from(&x), View::from(&y), w.map(View::from), &opts, Backward::new()).unwrap();
        let mut gx = vec![f64::NAN; x.len()];
        let mut gy = vec![7.0; x.len()];
        let mut gw = vec![-1.0; x.len()];
        let mut bufs = GradsMut::new().with("input", &mut gx).with("target", &mut gy);
        if weighted {
            bufs = bufs.with("weight", &mut gw);
        }
        let (loss2, rest) =
            mse_grad(View::from(&x), View::from(&y), w.map(View::from), &opts, Backward::new().into_buffers(bufs))
                .unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(loss, loss2);
        prop_assert_eq!(grads.get("input").unwrap().data(), &gx[..]);
        prop_assert_eq!(grads.get("target").unwrap().data(), &gy[..]);
        if weighted {
            prop_assert_eq!(grads.get("weight").unwrap().data(), &gw[..]);
        }
    }

    /// Upstream::Scalar(k) scales every gradient by k; Upstream::Array(u) for an unreduced
    /// loss scales element i by u_i.
    #[test]
    fn upstream_scales_gradients((x, y) in pair(), k in -3.0f64..3.0, red in reduction(), delta in 0.1f64..3.0) {
        let opts = HuberOptions { reduction: red, delta };
        let (_, ones) = huber_grad(View::from(&x), View::from(&y), None, &opts, Backward::new()).unwrap();
        let (_, scaled) = huber_grad(View::from(&x), View::from(&y), None, &opts,
                                     Backward::new().upstream(Upstream::Scalar(k))).unwrap();
        for name in ["input", "target"] {
            let want: Vec<f64> = ones.get(name).unwrap().data().iter().map(|g| k * g).collect();
            close(scaled.get(name).unwrap().data(), &want, 1e-14)?;
        }
        if red == Reduction::None {
            let u: Vec<f64> = (0..x.len()).map(|i| k + i as f64 * 0.25).collect();
            let (_, arr) = huber_grad(View::from(&x), View::from(&y), None, &opts,
                                      Backward::new().upstream(Upstream::Array(View::from(&u)))).unwrap();
            let want: Vec<f64> = ones.get("input").unwrap().data().iter().zip(&u).map(|(g, u)| g * u).collect();
            close(arr.get("input").unwrap().data(), &want, 1e-14)?;
        }
    }

    /// float32 results are within the float32 tolerance of the float64 results on the same
    /// (float32-rounded) inputs, values and gradients, for every registered loss of the
    /// pointwise family and every reduction.
    #[test]
    fn f32_agrees_with_f64(
        (x, y) in pair(),
        id in prop::sample::select(vec!["mse", "l1", "huber", "smooth_l1"]),
        red in prop::sample::select(vec!["none", "mean", "sum"]),
        t in 0.05f64..3.0,
    ) {
        // keep away from the kinks |x - y| in {0, t} where one ulp may pick the other branch
        prop_assume!(x.iter().zip(&y).all(|(a, b)| {
            let e = (a - b).abs();
            e > 1e-3 && (e - t).abs() > 1e-3
        }));
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let n = x.len();
        let args32 = vec![
            ("input".to_string(), ArrayArg::F32(Tensor::new(x32.clone(), vec![n]).unwrap())),
            ("target".to_string(), ArrayArg::F32(Tensor::new(y32.clone(), vec![n]).unwrap())),
        ];
        let args64 = vec![
            ("input".to_string(), ArrayArg::F64(Tensor::new(x32.iter().map(|&v| v as f64).collect(), vec![n]).unwrap())),
            ("target".to_string(), ArrayArg::F64(Tensor::new(y32.iter().map(|&v| v as f64).collect(), vec![n]).unwrap())),
        ];
        let mut opts = vec![("reduction".to_string(), red.to_string())];
        match id {
            "huber" => opts.push(("delta".into(), t.to_string())),
            "smooth_l1" => opts.push(("beta".into(), t.to_string())),
            _ => {}
        }
        let o32 = evaluate(id, &args32, &opts, true).unwrap();
        let o64 = evaluate(id, &args64, &opts, true).unwrap();
        let round = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| x as f32 as f64).collect() };
        let r = compare(&o32.loss.to_f64_vec(), &round(o64.loss.to_f64_vec()), TOL32);
        prop_assert!(r.is_ok(), "{} loss: {:?}", id, r);
        for ((n32, g32), (n64, g64)) in o32.grads.iter().zip(&o64.grads) {
            prop_assert_eq!(n32, n64);
            let r = compare(&g32.to_f64_vec(), &round(g64.to_f64_vec()), TOL32);
            prop_assert!(r.is_ok(), "{} gradient of {}: {:?}", id, n32, r);
        }
    }

    /// The same call gives the same bits (deterministic summation).
    #[test]
    fn deterministic((x, y) in pair(), delta in 0.1f64..3.0) {
        let opts = HuberOptions { reduction: Reduction::Mean, delta };
        let a = huber(View::from(&x), View::from(&y), None, &opts).unwrap();
        let b = huber(View::from(&x), View::from(&y), None, &opts).unwrap();
        prop_assert_eq!(a.item().unwrap().to_bits(), b.item().unwrap().to_bits());
    }
}
