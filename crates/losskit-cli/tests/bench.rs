//! Smoke tests of `losskit bench` (not timings): it runs, prints a row per record, and writes
//! JSON records with the keys of issue 3.

use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_losskit")).args(args).output().expect("the binary runs")
}

fn records(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the JSON file was written");
    match serde_json::from_str(&text).expect("valid JSON") {
        Value::Array(v) => v,
        other => panic!("expected an array, got {other}"),
    }
}

#[test]
fn quick_mse_prints_rows_and_writes_records() {
    let dir = std::env::temp_dir().join(format!("losskit-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = run(&["bench", "--quick", "--ids", "mse", "--threads", "1,2", "--json", json.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let recs = records(&json);
    let _ = std::fs::remove_dir_all(&dir);

    // 1 size x 2 dtypes x 2 thread counts x 3 modes
    assert_eq!(recs.len(), 12, "{recs:?}");
    let keys = [
        "peer",
        "case",
        "loss",
        "shape",
        "elements",
        "threads",
        "mode",
        "median_s",
        "p10_s",
        "p90_s",
        "reps",
        "gelem_per_s",
        "min_bytes",
        "eff_gbps",
    ];
    for r in &recs {
        let obj = r.as_object().expect("a record is an object");
        let got: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        assert_eq!(&got[..keys.len()], &keys, "the issue's keys come first, in its order");
        assert_eq!(r["peer"], "losskit");
        assert_eq!(r["case"], "mse/n=1e+04");
        assert_eq!(r["loss"], "mse");
        assert_eq!(r["shape"], serde_json::json!([10000]));
        assert_eq!(r["elements"], 10000);
        let (med, p10, p90) =
            (r["median_s"].as_f64().unwrap(), r["p10_s"].as_f64().unwrap(), r["p90_s"].as_f64().unwrap());
        assert!(0.0 < p10 && p10 <= med && med <= p90, "{r}");
        assert!(r["reps"].as_u64().unwrap() >= 3);
        let bytes = r["min_bytes"].as_f64().unwrap();
        assert!((r["eff_gbps"].as_f64().unwrap() - bytes / med / 1e9).abs() < 1e-9 * (1.0 + bytes / med / 1e9));
        // two inputs read, a scalar loss, gradients written in the backward modes
        let elem = if r["dtype"] == "f32" { 4.0 } else { 8.0 };
        let grads = r["grads"].as_array().unwrap().len() as f64;
        assert_eq!(bytes, elem * (2.0 * 10000.0 + 1.0 + grads * 10000.0), "{r}");
        match r["mode"].as_str().unwrap() {
            "fwd" => assert_eq!(grads, 0.0),
            "fwd_bwd_into" => assert_eq!(r["grads"], serde_json::json!(["input"])),
            "fwd_bwd" => assert!(grads >= 1.0),
            m => panic!("mode {m}"),
        }
    }
    for (t, d, m) in [(1, "f32", "fwd"), (2, "f64", "fwd_bwd_into"), (2, "f32", "fwd_bwd")] {
        assert!(recs.iter().any(|r| r["threads"] == t && r["dtype"] == d && r["mode"] == m), "{t} {d} {m}");
    }
    // the table: a header and one row per record
    assert!(stdout.lines().next().unwrap_or("").starts_with("case"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("mse/n=1e+04")).count(), 12, "{stdout}");
}

#[test]
fn stream_probe_reports_bandwidth() {
    let dir = std::env::temp_dir().join(format!("losskit-bench-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("stream.json");
    let out = run(&["bench", "--quick", "--stream", "--threads", "1", "--json", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recs = records(&json);
    let _ = std::fs::remove_dir_all(&dir);
    let kernels: Vec<&str> = recs.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, ["read", "triad"]);
    for r in &recs {
        assert_eq!(r["peer"], "stream");
        assert!(r["gbps"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bad_selections_are_one_line_errors() {
    for args in [
        &["bench", "--ids", "msee"][..],
        &["bench", "--ids", "mse", "--sizes", "1.5"],
        &["bench", "--ids", "mse", "--threads", "0"],
        &["bench", "--ids", "mse", "--modes", "bwd"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{err}");
    }
}
