//! `losskit list [--json]`.

use losskit::catalog;

pub fn run(json: bool) -> Result<String, String> {
    if json {
        let all: Vec<_> = catalog::specs().map(crate::json::spec).collect();
        return Ok(format!("{}\n", serde_json::Value::Array(all)));
    }
    let w = catalog::specs().map(|s| s.id.len()).max().unwrap_or(0);
    let fw = catalog::specs().map(|s| s.family.name().len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in catalog::specs() {
        out.push_str(&format!("{:w$}  {:fw$}  {}\n", s.id, s.family.name(), s.summary));
    }
    Ok(out)
}
