//! `losskit eval ID --arg NAME=FILE.npy ... --opt NAME=VALUE ... [--grad] [--out DIR]`: the
//! machine contract of CLI.md.

use std::fs;
use std::path::{Path, PathBuf};

use losskit::catalog::{self, AnyTensor, ArrayArg};
use serde_json::{json, Map, Value};

use crate::npy;

/// Arguments of `losskit eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The loss id (e.g. cross_entropy).
    pub id: String,
    /// A catalogue argument, read from a .npy file (repeatable).
    #[arg(long = "arg", value_name = "NAME=FILE.npy")]
    pub args: Vec<String>,
    /// A catalogue option (repeatable); options not given take the catalogue default.
    #[arg(long = "opt", value_name = "NAME=VALUE", allow_hyphen_values = true)]
    pub opts: Vec<String>,
    /// Also write the gradient of the sum of the loss for every differentiable argument.
    #[arg(long)]
    pub grad: bool,
    /// Folder for loss.npy and grad_NAME.npy (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn split<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), String> {
    match text.split_once('=') {
        Some((n, v)) if !n.is_empty() => Ok((n, v)),
        _ => Err(format!("{flag} '{text}': expected NAME=VALUE")),
    }
}

pub fn run(a: &EvalArgs) -> Result<String, String> {
    let entry = catalog::lookup(&a.id).map_err(|e| e.to_string())?;
    let spec = entry.spec;
    // names first (cheap, clear errors), then the files
    let mut named = Vec::new();
    for text in &a.args {
        let (name, file) = split("--arg", text)?;
        if spec.arg(name).is_none() {
            let known: Vec<&str> = spec.args.iter().map(|x| x.name).collect();
            return Err(format!("`{}` has no argument `{name}` (its arguments: {})", spec.id, known.join(", ")));
        }
        named.push((name.to_string(), PathBuf::from(file)));
    }
    let mut options = Vec::new();
    for text in &a.opts {
        let (name, value) = split("--opt", text)?;
        options.push((name.to_string(), value.to_string()));
    }
    let mut args: Vec<(String, ArrayArg)> = Vec::with_capacity(named.len());
    for (name, path) in named {
        let arr = npy::read_arg(&name, &path)?;
        args.push((name, arr));
    }
    let out = catalog::evaluate(&a.id, &args, &options, a.grad).map_err(|e| e.to_string())?;

    let mut files = Map::new();
    if let Some(dir) = &a.out {
        let mut outputs: Vec<(String, String, Vec<u8>)> = vec![("loss".into(), "loss.npy".into(), encode(&out.loss))];
        for (name, g) in &out.grads {
            outputs.push((format!("grad_{name}"), format!("grad_{name}.npy"), encode(g)));
        }
        write_all(dir, &outputs)?;
        for (key, file, _) in &outputs {
            files.insert(key.clone(), Value::from(dir.join(file).to_string_lossy().into_owned()));
        }
    }
    let shape = out.loss.shape().to_vec();
    let value = if shape.is_empty() { crate::json::number(out.loss.to_f64_vec()[0]) } else { Value::Null };
    let obj = json!({
        "id": spec.id,
        "dtype": out.dtype.name(),
        "shape": shape,
        "value": value,
        "files": Value::Object(files),
    });
    Ok(format!("{obj}\n"))
}

fn encode(t: &AnyTensor) -> Vec<u8> {
    match t {
        AnyTensor::F32(t) => npy::encode(t.data(), t.shape()),
        AnyTensor::F64(t) => npy::encode(t.data(), t.shape()),
    }
}

/// Writes every output under a temporary name, then renames them into place; on any failure
/// removes what it wrote, so that the folder never holds a partial result.
fn write_all(dir: &Path, outputs: &[(String, String, Vec<u8>)]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("--out {}: cannot create the folder: {e}", dir.display()))?;
    let pid = std::process::id();
    let tmp: Vec<PathBuf> = outputs.iter().map(|(_, f, _)| dir.join(format!(".{f}.{pid}.tmp"))).collect();
    let cleanup = |paths: &[PathBuf]| {
        for p in paths {
            let _ = fs::remove_file(p);
        }
    };
    for ((_, file, bytes), t) in outputs.iter().zip(&tmp) {
        if let Err(e) = npy::write_file(t, bytes) {
            cleanup(&tmp);
            return Err(format!("--out {}: cannot write {file}: {e}", dir.display()));
        }
    }
    let mut done = Vec::new();
    for ((_, file, _), t) in outputs.iter().zip(&tmp) {
        let fin = dir.join(file);
        if let Err(e) = fs::rename(t, &fin) {
            cleanup(&tmp);
            cleanup(&done);
            return Err(format!("--out {}: cannot move {file} into place: {e}", dir.display()));
        }
        done.push(fin);
    }
    Ok(())
}
