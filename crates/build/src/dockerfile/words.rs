//! Splitting an instruction's argument text: words, JSON arrays and `--flags`,
//! the way BuildKit's line parsers do before any variable expansion.

use std::collections::BTreeMap;

/// BuildKit's `[\t\v\f\r ]+` split (no quote handling): used by FROM, EXPOSE and
/// the non-JSON forms of COPY, ADD and VOLUME.
pub(crate) fn split_whitespace(rest: &str) -> Vec<String> {
    rest.split(['\t', '\u{b}', '\u{c}', '\r', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Quote-aware word split that keeps the quotes and escapes in the words (they
/// are removed later, by expansion). Used by ENV, LABEL and ARG.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue; // escape at end of line is dropped
                    }
                    cur.push(ch);
                    i += 1;
                    cur.push(chars[i]);
                    i += 1;
                    continue;
                }
                cur.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    cur.push(ch);
                    i += 1;
                    cur.push(chars[i]);
                    i += 1;
                    continue;
                }
                cur.push(ch);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !cur.is_empty()) {
        words.push(cur);
    }
    words
}

/// Result of trying to read the arguments as a JSON array of strings.
pub(crate) enum Json {
    /// A JSON array of strings.
    Array(Vec<String>),
    /// Not JSON (or not an array): use the shell/whitespace form.
    NotJson,
}

/// BuildKit's parseJSON: text starting with `[` that decodes as an array of
/// strings is exec form; `[1, 2]` is an error; anything else is not JSON.
pub(crate) fn parse_json(rest: &str) -> Result<Json, String> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(Json::NotJson);
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Ok(items) => {
            let mut out = Vec::with_capacity(items.len());
            for v in items {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Err(
                        "when using JSON array syntax, arrays must be comprised of strings only"
                            .into(),
                    ),
                }
            }
            Ok(Json::Array(out))
        }
        Err(_) => Ok(Json::NotJson),
    }
}

/// Split leading `--flag[=value]` words off the argument text. Returns the
/// flags (quotes and `\` escapes removed) and the remaining text.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut blank_ok = false;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut i = 0;
    let byte_at = |idx: usize| chars[..idx].iter().map(|c| c.len_utf8()).sum::<usize>();
    while i <= chars.len() {
        if i == chars.len() {
            if (in_word || quote.is_some()) && cur != "--" && (blank_ok || !cur.is_empty()) {
                words.push(cur);
            }
            return (words, String::new());
        }
        let ch = chars[i];
        if !in_word && quote.is_none() {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            if !(ch == '-' && chars.get(i + 1) == Some(&'-')) {
                return (words, line[byte_at(i)..].to_string());
            }
            in_word = true;
        }
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            } else if ch == '\\' && i + 1 < chars.len() {
                i += 1;
                cur.push(chars[i]);
            } else if ch != '\\' {
                cur.push(ch);
            }
            i += 1;
            continue;
        }
        if ch.is_whitespace() {
            if cur == "--" {
                return (words, line[byte_at(i)..].to_string());
            }
            if blank_ok || !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            blank_ok = false;
            in_word = false;
            i += 1;
            continue;
        }
        if ch == '\'' || ch == '"' {
            quote = Some(ch);
            blank_ok = true;
            i += 1;
            continue;
        }
        if ch == '\\' {
            if i + 1 < chars.len() {
                i += 1;
                cur.push(chars[i]);
            }
            i += 1;
            continue;
        }
        cur.push(ch);
        i += 1;
    }
    (words, String::new())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

/// BuildKit's BFlags: the flags an instruction accepts, checked like BuildKit.
pub(crate) struct Flags {
    defs: BTreeMap<&'static str, FlagType>,
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Declare the accepted flags and parse `args` against them.
    pub(crate) fn parse(
        args: &[String],
        defs: &[(&'static str, FlagType)],
    ) -> Result<Flags, String> {
        let mut f = Flags {
            defs: defs.iter().copied().collect(),
            values: BTreeMap::new(),
        };
        for arg in args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&ty) = f.defs.get(name) else {
                let known: Vec<&str> = f.defs.keys().copied().collect();
                let hint = super::suggest(name, &known)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!("unknown flag: {name}{hint}"));
            };
            if ty != FlagType::Strings && f.values.contains_key(name) {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let v = match ty {
                FlagType::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {name}")),
                    None => "true".to_string(),
                    Some(v) if v.eq_ignore_ascii_case("true") => "true".into(),
                    Some(v) if v.eq_ignore_ascii_case("false") => "false".into(),
                    Some(v) => {
                        return Err(format!("expecting boolean value for flag {name}, not: {v}"))
                    }
                },
                FlagType::String | FlagType::Strings => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: {name}")),
                },
            };
            f.values.entry(name.to_string()).or_default().push(v);
        }
        Ok(f)
    }

    /// A string flag's value, if given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    /// A bool flag's value (false when absent).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }

    /// All values of a repeatable flag.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words(r#"a=1 b="x y" c='z w'"#, '\\'),
            vec!["a=1", r#"b="x y""#, "c='z w'"]
        );
        assert_eq!(parse_words(r"a\ b c", '\\'), vec![r"a\ b", "c"]);
        assert_eq!(parse_words(r#"e="""#, '\\'), vec![r#"e="""#]);
        assert_eq!(parse_words("   ", '\\'), Vec::<String>::new());
    }

    #[test]
    fn flags_split() {
        let (f, rest) = extract_flags("--from=build --chown=\"1:1\" a b");
        assert_eq!(f, vec!["--from=build", "--chown=1:1"]);
        assert_eq!(rest, "a b");
        let (f, rest) = extract_flags("-- --notaflag x");
        assert!(f.is_empty());
        assert_eq!(rest.trim(), "--notaflag x");
        let (f, rest) = extract_flags("echo --x");
        assert!(f.is_empty());
        assert_eq!(rest, "echo --x");
        let (f, rest) = extract_flags("--link");
        assert_eq!(f, vec!["--link"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn flags_parse_errors() {
        let defs = [("link", FlagType::Bool), ("from", FlagType::String)];
        let e = |args: &[&str]| {
            let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            Flags::parse(&a, &defs).err().unwrap_or_default()
        };
        assert_eq!(e(&["--frm=x"]), "unknown flag: frm (did you mean from?)");
        assert_eq!(e(&["--from"]), "missing a value on flag: from");
        assert_eq!(
            e(&["--link=maybe"]),
            "expecting boolean value for flag link, not: maybe"
        );
        assert_eq!(e(&["--link="]), "missing a value on flag: link");
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: from"
        );
        let ok = Flags::parse(&["--link=false".into(), "--from=x".into()], &defs).unwrap();
        assert!(!ok.bool("link"));
        assert_eq!(ok.string("from").as_deref(), Some("x"));
    }

    #[test]
    fn json_forms() {
        assert!(
            matches!(parse_json(r#"["a", "b c"]"#), Ok(Json::Array(v)) if v == vec!["a", "b c"])
        );
        assert!(matches!(parse_json("[not json"), Ok(Json::NotJson)));
        assert!(matches!(parse_json("echo [x]"), Ok(Json::NotJson)));
        assert!(parse_json("[1, 2]").is_err());
    }
}
