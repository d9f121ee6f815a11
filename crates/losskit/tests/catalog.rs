//! The registry agrees with the contract: every implemented loss's id, family, reference,
//! arguments (name, grad, optional, order) and options (name, type, default, enum values in
//! order) are those of `../shared/spec/catalog-*.toml`, and the ids are in catalogue order.
//!
//! The spec folder is found through `LOSSKIT_SPEC_DIR`, else `../shared/spec` beside the
//! repository (where CI and the developers have it).

use std::path::PathBuf;

use losskit::catalog::{self, OptDefault};

fn spec_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("LOSSKIT_SPEC_DIR") {
        return Some(PathBuf::from(d));
    }
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec");
    d.is_dir().then_some(d)
}

fn load() -> Option<Vec<toml::Value>> {
    let dir = spec_dir()?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("spec dir readable")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("catalog-") && n.ends_with(".toml"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("catalogue readable");
        let v: toml::Value = toml::from_str(&text).expect("catalogue parses");
        out.extend(v["loss"].as_array().expect("[[loss]] tables").iter().cloned());
    }
    Some(out)
}

fn default_matches(want: &toml::Value, got: &OptDefault) -> bool {
    match (want, got) {
        (toml::Value::String(s), OptDefault::None) => s == "None",
        (toml::Value::String(s), OptDefault::Str(g)) => s == g,
        (toml::Value::Float(f), OptDefault::Float(g)) => f == g,
        (toml::Value::Integer(i), OptDefault::Int(g)) => i == g,
        (toml::Value::Integer(i), OptDefault::Float(g)) => (*i as f64) == *g,
        (toml::Value::Boolean(b), OptDefault::Bool(g)) => b == g,
        _ => false,
    }
}

#[test]
fn registry_matches_the_catalogue() {
    let Some(entries) = load() else {
        eprintln!("catalogue not found (set LOSSKIT_SPEC_DIR); skipping the comparison");
        return;
    };
    let mut problems = Vec::new();
    let mut last_pos = 0usize;
    for s in catalog::specs() {
        let Some(pos) = entries.iter().position(|e| e["id"].as_str() == Some(s.id)) else {
            problems.push(format!("{}: not in the catalogue", s.id));
            continue;
        };
        if pos < last_pos {
            problems.push(format!("{}: not in catalogue order", s.id));
        }
        last_pos = pos;
        let e = &entries[pos];
        if e["family"].as_str() != Some(s.family.name()) {
            problems.push(format!("{}: family {}", s.id, s.family.name()));
        }
        if e["reference"].as_str() != Some(s.reference) {
            problems.push(format!("{}: reference {}", s.id, s.reference));
        }
        let args = e.get("args").and_then(|a| a.as_array()).cloned().unwrap_or_default();
        let want: Vec<(&str, bool, bool)> = args
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap_or(""),
                    a.get("grad").and_then(|g| g.as_bool()).unwrap_or(false),
                    a.get("optional").and_then(|g| g.as_bool()).unwrap_or(false),
                )
            })
            .collect();
        let got: Vec<(&str, bool, bool)> = s.args.iter().map(|a| (a.name, a.grad, a.optional)).collect();
        if want != got {
            problems.push(format!("{}: args {got:?} != catalogue {want:?}", s.id));
        }
        let opts = e.get("options").and_then(|a| a.as_array()).cloned().unwrap_or_default();
        if opts.len() != s.options.len() {
            problems.push(format!("{}: {} options, catalogue has {}", s.id, s.options.len(), opts.len()));
        }
        for (w, g) in opts.iter().zip(s.options) {
            if w["name"].as_str() != Some(g.name) || w["type"].as_str() != Some(g.kind.name()) {
                problems.push(format!("{}: option {} ({})", s.id, g.name, g.kind.name()));
            }
            if !default_matches(&w["default"], &g.default) {
                problems.push(format!("{}: option {} default {:?} != {}", s.id, g.name, g.default, w["default"]));
            }
            let values: Vec<&str> = w
                .get("values")
                .and_then(|v| v.as_array())
                .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if values != g.values {
                problems.push(format!("{}: option {} values {:?} != {values:?}", s.id, g.name, g.values));
            }
        }
    }
    assert!(problems.is_empty(), "registry differs from the catalogue:\n{}", problems.join("\n"));
}

#[test]
fn ids_are_unique_and_every_spec_is_documented() {
    let mut ids: Vec<&str> = catalog::specs().map(|s| s.id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate ids");
    for s in catalog::specs() {
        assert!(!s.summary.is_empty() && !s.formula.is_empty() && !s.conventions.is_empty(), "{}", s.id);
        assert!(!s.reference_call.is_empty(), "{}", s.id);
        for o in s.options {
            if let OptDefault::Str(d) = o.default {
                assert!(o.values.contains(&d), "{}: default {d} of {} is not one of its values", s.id, o.name);
            }
        }
    }
}
