//! Validate stage, part 1: each file against the compose-spec JSON schema (bundled,
//! from compose-spec/compose-spec with descriptions removed). Errors are mapped
//! back to the YAML position of the offending key or value.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};

use crate::yaml::{to_json, Node};
use crate::Error;

const SCHEMA: &str = include_str!("../schema/compose-spec.json");

fn validator() -> Result<&'static Validator, Error> {
    static V: OnceLock<Result<Validator, String>> = OnceLock::new();
    let v = V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        jsonschema::draft7::new(&schema).map_err(|e| e.to_string())
    });
    v.as_ref()
        .map_err(|e| Error::Other(anyhow::anyhow!("bundled compose schema is broken: {e}")))
}

/// Check one parsed (and interpolated) file.
pub fn validate(doc: &Node) -> Result<(), Error> {
    // `!reset` values stand for "nothing": check the file as if they were absent.
    let mut stripped = doc.clone();
    crate::merge::strip_resets(&mut stripped);
    let json = to_json(&stripped);
    let v = validator()?;
    let Some(first) = v.iter_errors(&json).next() else {
        return Ok(());
    };
    Err(Error::Invalid(describe(doc, &first)))
}

/// Segments of a JSON pointer.
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Find the node at a pointer; also build the dotted path for messages.
fn locate<'n>(doc: &'n Node, segs: &[String]) -> (&'n Node, String) {
    let mut node = doc;
    let mut path = String::new();
    for s in segs {
        let next = match (node.as_map(), node.as_seq()) {
            (Some(m), _) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(s);
                m.get(s)
            }
            (_, Some(items)) => {
                path.push_str(&format!("[{s}]"));
                s.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    if path.is_empty() {
        path.push_str("(top level)");
    }
    (node, path)
}

fn type_names(kind: &TypeKind) -> Vec<String> {
    let name = |t: jsonschema::JsonType| match t {
        jsonschema::JsonType::Array => "a list".to_string(),
        jsonschema::JsonType::Object => "a mapping".to_string(),
        jsonschema::JsonType::Integer => "an integer".to_string(),
        jsonschema::JsonType::Number => "a number".to_string(),
        jsonschema::JsonType::Boolean => "a boolean".to_string(),
        jsonschema::JsonType::Null => "null".to_string(),
        jsonschema::JsonType::String => "a string".to_string(),
    };
    let mut names: Vec<String> = match kind {
        TypeKind::Single(t) => vec![name(*t)],
        TypeKind::Multiple(set) => set.iter().map(name).collect(),
    };
    // Alphabetical by the type word, so messages don't depend on the set's order.
    names.sort_by_key(|n| n.rsplit(' ').next().unwrap_or_default().to_string());
    names
}

/// Pick the most useful error among a oneOf's branches: one that got past the type
/// check (so it talks about the shape the user chose), else a list of allowed types.
fn best_branch<'a>(
    err: &'a ValidationError<'a>,
) -> Result<&'a ValidationError<'static>, Vec<String>> {
    let (ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }) =
        err.kind()
    else {
        return Err(Vec::new());
    };
    let mut types = Vec::new();
    for branch in context {
        let type_error = branch.iter().find(|e| {
            e.instance_path().as_str() == err.instance_path().as_str()
                && matches!(
                    e.kind(),
                    ValidationErrorKind::Type { .. } | ValidationErrorKind::Enum { .. }
                )
        });
        match type_error {
            Some(e) => {
                if let ValidationErrorKind::Type { kind } = e.kind() {
                    types.extend(type_names(kind));
                }
            }
            None => {
                if let Some(e) = branch.first() {
                    return Ok(e);
                }
            }
        }
    }
    types.dedup();
    Err(types)
}

fn describe(doc: &Node, e: &ValidationError<'_>) -> String {
    if let Ok(inner) = best_branch(e) {
        return describe(doc, inner);
    }
    let segs = segments(e.instance_path().as_str());
    let (node, path) = locate(doc, &segs);
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let key = unexpected.first().cloned().unwrap_or_default();
            let at = node.get(&key).map(|n| &n.key_mark).unwrap_or(&node.mark);
            let hint = if path == "(top level)" {
                " (top-level keys: version, name, include, services, networks, volumes, secrets, configs, models, x-*)"
            } else {
                ""
            };
            format!("{at}: {path}: additional property \"{key}\" is not allowed{hint}")
        }
        ValidationErrorKind::Type { kind } => {
            format!(
                "{}: {path}: must be {}, not {}",
                node.mark,
                type_names(kind).join(" or "),
                node.kind()
            )
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            let types = best_branch(e).err().unwrap_or_default();
            if types.is_empty() {
                format!("{}: {path}: invalid value", node.mark)
            } else {
                format!(
                    "{}: {path}: must be {}, not {}",
                    node.mark,
                    types.join(" or "),
                    node.kind()
                )
            }
        }
        ValidationErrorKind::Required { property } => {
            format!(
                "{}: {path}: missing required property {property}",
                node.mark
            )
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|o| o.to_string()).collect())
                .unwrap_or_default();
            format!(
                "{}: {path}: must be one of {}, not {}",
                node.mark,
                opts.join(", "),
                e.instance()
            )
        }
        ValidationErrorKind::UniqueItems => {
            format!("{}: {path}: contains duplicate items", node.mark)
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!(
                "{}: {path}: {} does not match {pattern}",
                node.mark,
                e.instance()
            )
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{}: {path}: must be at least {limit}", node.mark)
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{}: {path}: must be at most {limit}", node.mark)
        }
        _ => format!("{}: {path}: {e}", node.mark),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn check(text: &str) -> Result<(), String> {
        let doc = crate::yaml::parse(&Arc::from("c.yml"), text)
            .unwrap()
            .remove(0);
        validate(&doc).map_err(|e| e.to_string())
    }

    #[test]
    fn schema_accepts_and_refuses() {
        assert_eq!(
            check("services:\n  web:\n    image: x\n    ports: ['80:80']\n"),
            Ok(())
        );
        assert_eq!(check("x-anchor: 1\nservices: {}\n"), Ok(()));
        assert_eq!(
            check("services:\n  web:\n    image: x\n    imagee: y\n").unwrap_err(),
            "c.yml:4:5: services.web: additional property \"imagee\" is not allowed"
        );
        assert_eq!(
            check("services:\n  web:\n    image: [x]\n").unwrap_err(),
            "c.yml:3:12: services.web.image: must be a string, not a list"
        );
        let e = check("services:\n  web:\n    command: {a: 1}\n").unwrap_err();
        assert!(
            e.starts_with("c.yml:3:14: services.web.command: must be"),
            "{e}"
        );
        let e =
            check("services:\n  web:\n    depends_on:\n      db:\n        condition: started\n")
                .unwrap_err();
        assert!(
            e.contains("services.web.depends_on.db.condition: must be one of"),
            "{e}"
        );
    }
}
