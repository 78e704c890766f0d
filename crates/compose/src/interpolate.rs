//! Interpolate stage: `${VAR}` substitution in every scalar value (never in keys),
//! per file and before merging, as compose-go does.
//!
//! Forms: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
//! `${VAR:+replacement}`, `${VAR+replacement}`; defaults and replacements may nest further
//! substitutions; `$$` is a literal `$`. The `:` forms treat an empty value as unset.

use indexmap::IndexMap;

use crate::path::Path;
use crate::yaml::{Node, Value};
use crate::Error;

/// Variables visible to interpolation.
pub type Env = IndexMap<String, String>;

/// Substitute variables in one string. Unset variables used without a default are
/// recorded in `unset` and replaced by "".
pub fn substitute(input: &str, env: &Env, unset: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = matching_brace(body_start).ok_or_else(|| {
                format!("invalid interpolation format for \"{input}\": missing closing brace")
            })?;
            out.push_str(&braced(&body_start[..end], input, env, unset)?);
            rest = &body_start[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(format!(
                    "invalid interpolation format for \"{input}\": a \"$\" must be followed by a variable name or \"{{\"; write \"$$\" for a literal \"$\""
                ));
            }
            let name = &after[..len];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => unset.push(name.to_string()),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of the variable name at the start of `s` (`[_A-Za-z][_A-Za-z0-9]*`).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    b.iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// Index of the `}` closing a `${`, skipping nested `${…}` and `$$`.
fn matching_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, input: &str, env: &Env, unset: &mut Vec<String>) -> Result<String, String> {
    let len = name_len(body);
    let bad = || {
        format!("invalid interpolation format for \"{input}\": \"${{{body}}}\" is not a valid substitution")
    };
    if len == 0 {
        return Err(bad());
    }
    let name = &body[..len];
    let op = &body[len..];
    let value = env.get(name);
    if op.is_empty() {
        return Ok(match value {
            Some(v) => v.clone(),
            None => {
                unset.push(name.to_string());
                String::new()
            }
        });
    }
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let Some(kind) = op.chars().next() else {
        return Err(bad());
    };
    let arg = &op[kind.len_utf8()..];
    // With ':', an empty value counts as unset.
    let set = match value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match kind {
        '-' => {
            if set {
                Ok(value.cloned().unwrap_or_default())
            } else {
                substitute(arg, env, unset)
            }
        }
        '+' => {
            if set {
                substitute(arg, env, unset)
            } else {
                Ok(String::new())
            }
        }
        '?' => {
            if set {
                Ok(value.cloned().unwrap_or_default())
            } else {
                let msg = substitute(arg, env, unset)?;
                if msg.is_empty() {
                    Err(format!("required variable {name} is missing a value"))
                } else {
                    Err(format!(
                        "required variable {name} is missing a value: {msg}"
                    ))
                }
            }
        }
        _ => Err(bad()),
    }
}

/// Interpolate every scalar of a tree in place. Returns the names of unset variables.
pub fn interpolate_tree(
    node: &mut Node,
    env: &Env,
    path: &mut Path,
    unset: &mut Vec<String>,
) -> Result<(), Error> {
    match &mut node.value {
        Value::Scalar { text, plain } => {
            if text.contains('$') {
                let new = substitute(text, env, unset)
                    .map_err(|e| Error::Invalid(format!("{}: {path}: {e}", node.mark)))?;
                if new != *text {
                    *text = new;
                    // Substituted values are strings; typed fields convert them later.
                    *plain = false;
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_index(i);
                interpolate_tree(item, env, path, unset)?;
                path.pop();
            }
        }
        Value::Map(map) => {
            for (k, v) in map.iter_mut() {
                path.push_key(k);
                interpolate_tree(v, env, path, unset)?;
                path.pop();
            }
        }
        Value::Null => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("FOO", "foo"), ("EMPTY", ""), ("N", "3"), ("INNER", "in")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (input, expected output or Err(substring), expected unset names)
    const CASES: &[(&str, Result<&str, &str>, &[&str])] = &[
        ("plain", Ok("plain"), &[]),
        ("$FOO", Ok("foo"), &[]),
        ("${FOO}", Ok("foo"), &[]),
        ("a${FOO}b", Ok("afoob"), &[]),
        ("$FOO-bar", Ok("foo-bar"), &[]),
        ("$$FOO", Ok("$FOO"), &[]),
        ("$${FOO}", Ok("${FOO}"), &[]),
        ("$UNSET", Ok(""), &["UNSET"]),
        ("${UNSET}", Ok(""), &["UNSET"]),
        ("${UNSET:-def}", Ok("def"), &[]),
        ("${EMPTY:-def}", Ok("def"), &[]),
        ("${EMPTY-def}", Ok(""), &[]),
        ("${UNSET-def}", Ok("def"), &[]),
        ("${FOO:-def}", Ok("foo"), &[]),
        ("${FOO:+rep}", Ok("rep"), &[]),
        ("${EMPTY:+rep}", Ok(""), &[]),
        ("${EMPTY+rep}", Ok("rep"), &[]),
        ("${UNSET+rep}", Ok(""), &[]),
        ("${FOO:?boom}", Ok("foo"), &[]),
        ("${EMPTY?boom}", Ok(""), &[]),
        (
            "${UNSET:?you must set it}",
            Err("required variable UNSET is missing a value: you must set it"),
            &[],
        ),
        (
            "${EMPTY:?}",
            Err("required variable EMPTY is missing a value"),
            &[],
        ),
        (
            "${UNSET?err}",
            Err("required variable UNSET is missing a value: err"),
            &[],
        ),
        ("${UNSET:-${INNER}}", Ok("in"), &[]),
        ("${UNSET:-${ALSO:-deep}}", Ok("deep"), &[]),
        ("${UNSET:-x${N}y}", Ok("x3y"), &[]),
        ("${UNSET:-$$}", Ok("$"), &[]),
        ("${UNSET:?missing ${FOO}}", Err("missing foo"), &[]),
        ("${FOO", Err("missing closing brace"), &[]),
        ("${}", Err("is not a valid substitution"), &[]),
        ("${1A}", Err("is not a valid substitution"), &[]),
        ("${FOO!x}", Err("is not a valid substitution"), &[]),
        ("cost $5", Err("must be followed by a variable name"), &[]),
        (
            "trailing $",
            Err("must be followed by a variable name"),
            &[],
        ),
        ("${N}${N}", Ok("33"), &[]),
        ("${A€x}", Err("is not a valid substitution"), &[]),
        ("${€}", Err("is not a valid substitution"), &[]),
    ];

    #[test]
    fn interpolation_table() {
        for (input, want, want_unset) in CASES {
            let mut unset = Vec::new();
            let got = substitute(input, &env(), &mut unset);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w, "input {input}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "input {input}: {g}"),
                (w, g) => panic!("input {input}: want {w:?}, got {g:?}"),
            }
            assert_eq!(&unset, want_unset, "input {input}");
        }
    }
}
