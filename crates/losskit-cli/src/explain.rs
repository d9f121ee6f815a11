//! `losskit explain ID`: the human description of one loss.

use losskit::catalog::{self, OptDefault};

pub fn run(id: &str) -> Result<String, String> {
    let entry = catalog::lookup(id).map_err(|e| e.to_string())?;
    Ok(render(entry.spec))
}

fn default_text(d: &OptDefault) -> String {
    match *d {
        OptDefault::Float(f) => format!("{f:?}"),
        OptDefault::Int(i) => i.to_string(),
        OptDefault::Bool(b) => b.to_string(),
        OptDefault::Str(s) => s.to_string(),
        OptDefault::None => "None".into(),
    }
}

/// The text of `losskit explain`.
pub fn render(s: &catalog::LossSpec) -> String {
    let mut t = String::new();
    t += &format!("{} ({})\n  {}\n\n", s.id, s.family.name(), s.summary);
    t += &format!("Formula (LaTeX):\n  {}\n\n", s.formula);
    t += &format!("Reference:\n  {}\n  {}\n\n", s.reference, s.reference_call);
    t += "Arguments:\n";
    for a in s.args {
        let mut flags = vec![a.kind.name().to_string()];
        if a.optional {
            flags.push("optional".into());
        }
        if a.grad {
            flags.push("differentiable".into());
        }
        t += &format!("  {:14} {} [{}]\n", a.name, a.shape, flags.join(", "));
        if !a.constraints.is_empty() {
            t += &format!("  {:14} {}\n", "", a.constraints);
        }
    }
    t += "\nOptions:\n";
    if s.options.is_empty() {
        t += "  (none)\n";
    }
    for o in s.options {
        let mut line = format!("  {:14} {} = {}", o.name, o.kind.name(), default_text(&o.default));
        if !o.values.is_empty() {
            line += &format!("  (one of: {})", o.values.join(", "));
        }
        if o.required {
            line += "  [required]";
        }
        t += &line;
        t += "\n";
        if !o.constraints.is_empty() {
            t += &format!("  {:14} {}\n", "", o.constraints);
        }
    }
    t += &format!("\nReduction: default {}; unreduced shape: {}\n", s.reduction_default, s.none_shape);
    t += &format!("\nConventions and traps:\n{}\n", wrap(s.conventions, 96, "  "));
    if !s.errata.is_empty() {
        t += &format!("\nWhere the original post is wrong:\n{}\n", wrap(s.errata, 96, "  "));
    }
    t
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out += indent;
            out += &line;
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += indent;
        out += &line;
    }
    out
}
