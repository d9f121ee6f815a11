//! The command-line contract of CLI.md, exercised on the real binary: outputs, the JSON line,
//! the .npy variants it must read, and the error contract (exit 2, one `error:` line on stderr,
//! nothing on stdout, no file left in `--out`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_losskit"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().expect("the binary runs")
}

/// A hand-built .npy file: `descr`, C or Fortran order, format version, raw data bytes.
fn npy(path: &Path, descr: &str, fortran: bool, shape: &[usize], version: u8, data: &[u8]) {
    let shape_txt = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape_txt}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    let total = prefix + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).expect("write test input");
}

fn f64_le(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_be(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads back a little-endian float64 .npy written by the binary (format 1.0).
fn read_f64(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(path).expect("output exists");
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).expect("ascii header");
    assert!(header.contains("'descr': '<f8'"), "{header}");
    let shape_txt = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).expect("shape");
    let shape: Vec<usize> =
        shape_txt.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().expect("dim")).collect();
    let data = b[10 + hlen..].chunks(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    (shape, data)
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("losskit-cli-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout must be empty on error: {}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{:?} should mention {needle:?}", lines[0]);
}

#[test]
fn eval_writes_loss_and_gradients() {
    let d = Dir::new("ok");
    // mse of x = [0, 1, 2, 3] against y = 1: squared errors [1, 0, 1, 4], mean 1.5;
    // gradient of the mean: 2 (x - y) / 4 = [-0.5, 0, 0.5, 1]
    npy(&d.0.join("x.npy"), "<f8", false, &[2, 2], 1, &f64_le(&[0.0, 1.0, 2.0, 3.0]));
    npy(&d.0.join("y.npy"), "<f8", false, &[2, 2], 1, &f64_le(&[1.0; 4]));
    let out = run(&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=y.npy", "--grad", "--out", "o"], &d.0);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["id"], "mse");
    assert_eq!(v["dtype"], "float64");
    assert_eq!(v["shape"], serde_json::json!([]));
    assert_eq!(v["value"], 1.5);
    let (shape, loss) = read_f64(&d.0.join("o/loss.npy"));
    assert_eq!((shape, loss), (vec![], vec![1.5]));
    let (shape, g) = read_f64(&d.0.join("o/grad_input.npy"));
    assert_eq!((shape, g), (vec![2, 2], vec![-0.5, 0.0, 0.5, 1.0]));
    let (_, gt) = read_f64(&d.0.join("o/grad_target.npy"));
    assert_eq!(gt, vec![0.5, 0.0, -0.5, -1.0]);
    // without --grad: only loss.npy
    let out = run(&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=y.npy", "--out", "o2"], &d.0);
    assert!(out.status.success());
    let files: Vec<_> =
        std::fs::read_dir(d.0.join("o2")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(files, vec![std::ffi::OsString::from("loss.npy")]);
    // without --out: files is {}
    let out = run(&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=y.npy", "--opt", "reduction=none"], &d.0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["files"], serde_json::json!({}));
    assert_eq!(v["value"], serde_json::Value::Null);
    assert_eq!(v["shape"], serde_json::json!([2, 2]));
}

#[test]
fn reads_every_npy_variant() {
    let d = Dir::new("variants");
    // the same 2x3 matrix [[0, 1, 2], [3, 4, 5]] as C order, Fortran order, big-endian,
    // format 2.0 and 3.0; target zeros, reduction none: the loss is the matrix squared
    let c = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    let f = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
    npy(&d.0.join("c.npy"), "<f8", false, &[2, 3], 1, &f64_le(&c));
    npy(&d.0.join("f.npy"), "<f8", true, &[2, 3], 1, &f64_le(&f));
    npy(&d.0.join("b.npy"), ">f8", false, &[2, 3], 1, &f64_be(&c));
    npy(&d.0.join("v2.npy"), "<f8", false, &[2, 3], 2, &f64_le(&c));
    npy(&d.0.join("v3.npy"), "<f8", false, &[2, 3], 3, &f64_le(&c));
    npy(&d.0.join("z.npy"), "<f8", true, &[2, 3], 1, &f64_le(&[0.0; 6]));
    for name in ["c", "f", "b", "v2", "v3"] {
        let out = run(
            &[
                "eval",
                "mse",
                "--arg",
                &format!("input={name}.npy"),
                "--arg",
                "target=z.npy",
                "--opt",
                "reduction=none",
                "--out",
                name,
            ],
            &d.0,
        );
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let (shape, loss) = read_f64(&d.0.join(name).join("loss.npy"));
        assert_eq!(shape, vec![2, 3], "{name}");
        assert_eq!(loss, vec![0.0, 1.0, 4.0, 9.0, 16.0, 25.0], "{name}");
    }
}

#[test]
fn float32_computation_and_value_digits() {
    let d = Dir::new("f32");
    npy(&d.0.join("x.npy"), "<f4", false, &[3], 1, &f32_le(&[0.1, 0.2, 0.3]));
    npy(&d.0.join("y.npy"), "<f4", false, &[3], 1, &f32_le(&[0.0; 3]));
    let out = run(&["eval", "l1", "--arg", "input=x.npy", "--arg", "target=y.npy"], &d.0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["dtype"], "float32");
    // mean of the float32 values 0.1, 0.2, 0.3, rounded to float32
    let want = ((0.1f32 as f64 + 0.2f32 as f64 + 0.3f32 as f64) / 3.0) as f32;
    assert_eq!(v["value"].as_f64().expect("number") as f32, want);
}

#[test]
fn list_json_and_explain() {
    let d = Dir::new("list");
    let out = run(&["list", "--json"], &d.0);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json array");
    let huber = v.as_array().expect("array").iter().find(|o| o["id"] == "huber").expect("huber listed");
    assert_eq!(huber["reference"], "torch.nn.functional.huber_loss");
    assert_eq!(huber["options"][1]["name"], "delta");
    assert_eq!(huber["options"][1]["default"], 1.0);
    assert_eq!(huber["args"][2]["optional"], true);
    let out = run(&["explain", "huber"], &d.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("torch.nn.functional.huber_loss") && text.contains("delta"), "{text}");
    let out = run(&["explain", "hubber"], &d.0);
    assert_error(&out, "huber");
}

#[test]
fn errors_are_one_line_exit_2_and_leave_no_file() {
    let d = Dir::new("errors");
    npy(&d.0.join("x.npy"), "<f8", false, &[2, 3], 1, &f64_le(&[0.0; 6]));
    npy(&d.0.join("x32.npy"), "<f4", false, &[2, 3], 1, &f32_le(&[0.0; 6]));
    npy(&d.0.join("x4.npy"), "<f8", false, &[4], 1, &f64_le(&[0.0; 4]));
    npy(&d.0.join("i.npy"), "<i8", false, &[2, 3], 1, &[0u8; 48]);
    std::fs::write(d.0.join("garbage.npy"), b"this is not numpy").expect("write");
    let mut trunc = std::fs::read(d.0.join("x.npy")).expect("read");
    trunc.truncate(trunc.len() - 5);
    std::fs::write(d.0.join("trunc.npy"), trunc).expect("write");
    let cases: &[(&[&str], &str)] = &[
        (&["eval", "msee"], "mse"),
        (&["eval", "mse", "--arg", "input=x.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "tgt=x.npy"], "tgt"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=x4.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=x32.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=i.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=garbage.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=trunc.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=missing.npy"], "target"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=x.npy", "--opt", "reduction=avg"], "reduction"),
        (&["eval", "mse", "--arg", "input=x.npy", "--arg", "target=x.npy", "--opt", "beta=1"], "beta"),
        (&["eval", "huber", "--arg", "input=x.npy", "--arg", "target=x.npy", "--opt", "delta=-1"], "delta"),
        (&["eval", "huber", "--arg", "input=x.npy", "--arg", "target=x.npy", "--opt", "delta=abc"], "delta"),
        (&["eval", "smooth_l1", "--arg", "input=x.npy", "--arg", "target=x.npy", "--opt", "beta=-0.5"], "beta"),
        (&["eval", "mse", "--arg", "input"], "--arg"),
    ];
    for (k, (args, needle)) in cases.iter().enumerate() {
        let out_dir = format!("out{k}");
        let mut full: Vec<&str> = args.to_vec();
        full.extend_from_slice(&["--grad", "--out", &out_dir]);
        let out = run(&full, &d.0);
        assert_error(&out, needle);
        let left: Vec<_> = std::fs::read_dir(d.0.join(&out_dir)).map(|r| r.count()).into_iter().collect();
        assert!(left.iter().all(|&n| n == 0), "case {k}: files left in {out_dir}");
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    // `losskit list --json | head -c 1`: the reader goes away; the binary must not panic (101)
    let mut child = bin()
        .args(["list", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("exits");
    assert_ne!(out.status.code(), Some(101), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
