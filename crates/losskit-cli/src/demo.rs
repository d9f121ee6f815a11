//! `losskit demo`: every loss on the sample data of `samples/`, as a table of values and
//! gradient norms.

use std::path::{Path, PathBuf};

use losskit::catalog::{self, ArrayArg};

/// Arguments of `losskit demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The sample folder (default: `samples/` of the current folder, else of the repository).
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// Compute in float64 instead of float32.
    #[arg(long)]
    pub f64: bool,
}

/// Which sample file feeds which argument of each loss, and the options used.
struct Case {
    id: &'static str,
    args: &'static [(&'static str, &'static str)],
    opts: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case { id: "mse", args: &[("input", "regression/predictions"), ("target", "regression/targets")], opts: &[] },
    Case { id: "l1", args: &[("input", "regression/predictions"), ("target", "regression/targets")], opts: &[] },
    Case {
        id: "huber",
        args: &[("input", "regression/predictions"), ("target", "regression/targets")],
        opts: &[("delta", "0.5")],
    },
    Case {
        id: "smooth_l1",
        args: &[("input", "regression/predictions"), ("target", "regression/targets")],
        opts: &[("beta", "0.5")],
    },
    Case { id: "log_cosh", args: &[("y_true", "regression/targets"), ("y_pred", "regression/predictions")], opts: &[] },
    Case {
        id: "mean_absolute_percentage_error",
        args: &[("y_true", "regression/targets"), ("y_pred", "regression/predictions")],
        opts: &[],
    },
    Case {
        id: "mean_squared_logarithmic_error",
        args: &[("y_true", "regression/targets"), ("y_pred", "regression/predictions")],
        opts: &[],
    },
    Case { id: "poisson", args: &[("y_true", "regression/counts"), ("y_pred", "regression/rates")], opts: &[] },
    Case {
        id: "kl_divergence",
        args: &[("y_true", "classification/target_probs"), ("y_pred", "classification/predicted_probs")],
        opts: &[],
    },
    Case { id: "log_softmax", args: &[("input", "classification/logits")], opts: &[("dim", "1")] },
    Case {
        id: "cross_entropy",
        args: &[("input", "classification/logits"), ("target", "classification/labels")],
        opts: &[("label_smoothing", "0.1")],
    },
    Case { id: "nll", args: &[("input", "classification/log_probs"), ("target", "classification/labels")], opts: &[] },
    Case { id: "binary_cross_entropy", args: &[("input", "binary/probs"), ("target", "binary/labels")], opts: &[] },
    Case {
        id: "binary_cross_entropy_with_logits",
        args: &[("input", "binary/logits"), ("target", "binary/labels")],
        opts: &[],
    },
    Case {
        id: "categorical_crossentropy",
        args: &[("y_true", "classification/onehot"), ("y_pred", "classification/predicted_probs")],
        opts: &[],
    },
    Case {
        id: "sparse_categorical_crossentropy",
        args: &[("y_true", "classification/labels"), ("y_pred", "classification/logits")],
        opts: &[("from_logits", "true")],
    },
    Case {
        id: "binary_crossentropy",
        args: &[("y_true", "binary/labels"), ("y_pred", "binary/logits")],
        opts: &[("from_logits", "true")],
    },
    Case { id: "squared_hinge", args: &[("y_true", "binary/labels"), ("y_pred", "binary/logits")], opts: &[] },
    Case {
        id: "multiclass_hinge",
        args: &[("scores", "classification/logits"), ("labels", "classification/labels")],
        opts: &[],
    },
    Case {
        id: "margin_ranking",
        args: &[("input1", "ranking/scores1"), ("input2", "ranking/scores2"), ("target", "ranking/order")],
        opts: &[("margin", "0.2")],
    },
    Case {
        id: "cosine_similarity",
        args: &[("y_true", "embeddings/positive"), ("y_pred", "embeddings/anchor")],
        opts: &[],
    },
    Case {
        id: "triplet_margin",
        args: &[
            ("anchor", "embeddings/anchor"),
            ("positive", "embeddings/positive"),
            ("negative", "embeddings/negative"),
        ],
        opts: &[],
    },
];

fn sample_dir(given: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(d) = given {
        return Ok(d.clone());
    }
    let here = PathBuf::from("samples");
    if here.is_dir() {
        return Ok(here);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    if repo.is_dir() {
        return Ok(repo);
    }
    Err("no samples/ folder here or in the repository (pass --samples DIR)".into())
}

fn to_f64(a: ArrayArg) -> ArrayArg {
    match a {
        ArrayArg::F32(t) => {
            let data = t.data().iter().map(|&v| v as f64).collect();
            // same shape, same length: cannot fail
            losskit::Tensor::new(data, t.shape().to_vec()).map(ArrayArg::F64).unwrap_or(ArrayArg::F32(t))
        }
        other => other,
    }
}

pub fn run(a: &DemoArgs) -> Result<String, String> {
    let mut text = String::new();
    let dir = sample_dir(&a.samples)?;
    let dtype = if a.f64 { "float64" } else { "float32" };
    text.push_str(&format!("losskit demo: every loss on the sample data in {} ({dtype})\n\n", dir.display()));
    text.push_str(&format!("{:34} {:>14}  {:>13}  gradient norms\n", "loss", "value", "shape"));
    text.push_str(&format!("{}\n", "-".repeat(100)));
    for id in catalog::specs().map(|s| s.id) {
        let Some(case) = CASES.iter().find(|c| c.id == id) else {
            text.push_str(&format!("{id:34} (no sample mapping)\n"));
            continue;
        };
        let mut args = Vec::new();
        for (name, rel) in case.args {
            let path = dir.join(format!("{rel}.npy"));
            let arr = crate::npy::read_arg(name, &path)?;
            args.push((name.to_string(), if a.f64 { to_f64(arr) } else { arr }));
        }
        let opts: Vec<(String, String)> = case.opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let out = catalog::evaluate(id, &args, &opts, true).map_err(|e| format!("{id}: {e}"))?;
        let shape = out.loss.shape().to_vec();
        let vals = out.loss.to_f64_vec();
        let value = if shape.is_empty() {
            format!("{:.6}", vals[0])
        } else {
            format!("mean {:.4}", vals.iter().sum::<f64>() / vals.len().max(1) as f64)
        };
        let norms: Vec<String> = out
            .grads
            .iter()
            .map(|(n, g)| format!("{n} {:.4}", g.to_f64_vec().iter().map(|v| v * v).sum::<f64>().sqrt()))
            .collect();
        let opt_txt = if case.opts.is_empty() {
            String::new()
        } else {
            format!(" [{}]", case.opts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        };
        text.push_str(&format!(
            "{:34} {:>14}  {:>13}  {}{}\n",
            id,
            value,
            format!("{shape:?}"),
            norms.join(", "),
            opt_txt
        ));
    }
    Ok(text)
}
