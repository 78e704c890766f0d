//! `.env` and `env_file` parsing, as compose-go's dotenv: `KEY=VALUE` lines, optional
//! `export `, `#` comments, single quotes literal, double quotes with `\n`-style escapes,
//! `${VAR}` substitution (from earlier lines, then the lookup) outside single quotes,
//! and bare `KEY` lines that take the value from the lookup.

use crate::interpolate::{substitute, Env};

/// Parse `text`; `lookup` answers variables not defined earlier in the file.
/// Errors are "line N: what".
pub fn parse(text: &str, lookup: &Env) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim_start())),
            None => (line, None),
        };
        if key.is_empty()
            || key
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\'')
        {
            return Err(format!("line {}: invalid variable name \"{key}\"", n + 1));
        }
        let Some(value) = value else {
            out.push((key.to_string(), lookup.get(key).cloned()));
            continue;
        };
        let mut scope = lookup.clone();
        for (k, v) in &out {
            if let Some(v) = v {
                scope.insert(k.clone(), v.clone());
            }
        }
        let parsed = if let Some(body) = value.strip_prefix('\'') {
            let body = read_quoted(body, '\'', &mut lines)
                .ok_or_else(|| format!("line {}: unterminated single quote", n + 1))?;
            body
        } else if let Some(body) = value.strip_prefix('"') {
            let body = read_quoted(body, '"', &mut lines)
                .ok_or_else(|| format!("line {}: unterminated double quote", n + 1))?;
            let body = unescape(&body);
            expand(&body, &scope).map_err(|e| format!("line {}: {e}", n + 1))?
        } else {
            // Unquoted: an inline comment starts at " #".
            let v = match value.find(" #") {
                Some(i) => &value[..i],
                None => value,
            };
            expand(v.trim_end(), &scope).map_err(|e| format!("line {}: {e}", n + 1))?
        };
        out.push((key.to_string(), Some(parsed)));
    }
    Ok(out)
}

fn expand(v: &str, scope: &Env) -> Result<String, String> {
    let mut unset = Vec::new();
    substitute(v, scope, &mut unset)
}

/// The body of a quoted value, which may continue on following lines.
fn read_quoted<'a>(
    first: &'a str,
    q: char,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Option<String> {
    let mut acc = String::new();
    let mut cur = first.to_string();
    loop {
        if let Some(end) = closing_quote(&cur, q) {
            acc.push_str(&cur[..end]);
            return Some(acc);
        }
        acc.push_str(&cur);
        acc.push('\n');
        cur = lines.next()?.1.to_string();
    }
}

fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_forms() {
        let mut env = Env::new();
        env.insert("HOST_VAR".into(), "from-host".into());
        let text = "# comment\n\nA=1\nexport B = two\nC='lit $A'\nD=\"x\\ny ${A}\"\nE=val # comment\nF=${A}-${MISSING:-d}\nHOST_VAR\nNOPE\nG=\"multi\nline\"\nH=\n";
        let got = parse(text, &env).unwrap();
        let want: Vec<(&str, Option<&str>)> = vec![
            ("A", Some("1")),
            ("B", Some("two")),
            ("C", Some("lit $A")),
            ("D", Some("x\ny 1")),
            ("E", Some("val")),
            ("F", Some("1-d")),
            ("HOST_VAR", Some("from-host")),
            ("NOPE", None),
            ("G", Some("multi\nline")),
            ("H", Some("")),
        ];
        let got: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dotenv_errors() {
        assert!(parse("A='open\n", &Env::new())
            .unwrap_err()
            .contains("line 1: unterminated single quote"));
        assert!(parse("BAD KEY=1\n", &Env::new())
            .unwrap_err()
            .contains("line 1: invalid variable name"));
    }
}
