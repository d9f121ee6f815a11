//! `losskit list [--json]`.

use losskit::catalog;

pub fn run(json: bool) -> Result<(), String> {
    if json {
        let all: Vec<_> = catalog::specs().map(crate::json::spec).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    let w = catalog::specs().map(|s| s.id.len()).max().unwrap_or(0);
    let fw = catalog::specs().map(|s| s.family.name().len()).max().unwrap_or(0);
    for s in catalog::specs() {
        println!("{:w$}  {:fw$}  {}", s.id, s.family.name(), s.summary);
    }
    Ok(())
}
