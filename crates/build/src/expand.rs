//! Variable expansion as BuildKit's Dockerfile shell lexer does it.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`,
//! `${VAR%pat}`, `${VAR%%pat}`; single quotes (literal, no expansion), double
//! quotes (expansion, escape only `"`, `$` and the escape char), the escape
//! character (`\` or `` ` ``) outside quotes. Quotes are removed from the result.
//! Unset variables expand to the empty string.

use crate::dockerfile::instruction::{Copy, Instruction};

/// Errors from expansion, in BuildKit's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// Variable lookup used during expansion.
pub trait Vars {
    /// The value of `name`, or `None` when unset.
    fn get_var(&self, name: &str) -> Option<String>;
}

impl Vars for [(String, String)] {
    fn get_var(&self, name: &str) -> Option<String> {
        // Later entries win, like an environment built up in order.
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn get_var(&self, name: &str) -> Option<String> {
        self.as_slice().get_var(name)
    }
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn get_var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The lexer. `Lexer::new('\\')` for normal Dockerfiles.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output (used to detect quoted heredoc words).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding to "".
    pub skip_unset: bool,
}

impl Lexer {
    /// A lexer with the given escape character and BuildKit's default options.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Expand one word: quotes removed, variables substituted, whitespace kept.
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
        let mut st = State::new(self, word, vars);
        let (s, _) = st.process_stop_on(None)?;
        Ok(s)
    }

    /// Expand and split into words on unquoted whitespace (also whitespace that
    /// comes from an unquoted variable value), like a shell.
    pub fn process_words(&self, word: &str, vars: &dyn Vars) -> Result<Vec<String>, ExpandError> {
        let mut st = State::new(self, word, vars);
        st.process_stop_on(None)?;
        Ok(st.words.finish())
    }
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.cur));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_raw_char(c));
    }
    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.cur);
        }
        self.words
    }
}

struct State<'a> {
    lx: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    words: Words,
}

fn missing_brace() -> ExpandError {
    ExpandError("syntax error: missing '}'".into())
}

impl<'a> State<'a> {
    fn new(lx: &'a Lexer, word: &str, vars: &'a dyn Vars) -> Self {
        State {
            lx,
            chars: word.chars().collect(),
            pos: 0,
            vars,
            words: Words::default(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (consumed) or the end. Returns the text and whether
    /// the stop character was found.
    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, bool), ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((out, true));
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    self.words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    self.words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    self.words.add_string(&s);
                    out.push_str(&s);
                }
                _ => {
                    self.next();
                    let mut c = ch;
                    if c == self.lx.escape {
                        if self.lx.raw_escapes {
                            self.words.add_raw_char(c);
                            out.push(c);
                        }
                        match self.next() {
                            Some(n) => c = n,
                            None => break, // escape at end of word is dropped
                        }
                        self.words.add_raw_char(c);
                    } else {
                        self.words.add_char(c);
                    }
                    out.push(c);
                }
            }
        }
        Ok((out, stop.is_none()))
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        if self.lx.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ExpandError(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    ))
                }
                Some('\'') => {
                    if self.lx.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        if self.lx.raw_quotes {
            out.push('"');
        }
        loop {
            let Some(ch) = self.peek() else {
                return Err(ExpandError(
                    "unexpected end of statement while looking for matching double-quote".into(),
                ));
            };
            if ch == '"' {
                self.next();
                if self.lx.raw_quotes {
                    out.push('"');
                }
                return Ok(out);
            }
            if ch == '$' {
                let v = self.dollar()?;
                out.push_str(&v);
                continue;
            }
            self.next();
            let mut c = ch;
            if c == self.lx.escape {
                if self.lx.raw_escapes {
                    out.push(c);
                }
                match self.peek() {
                    None => continue,
                    Some(n) if n == '"' || n == '$' || n == self.lx.escape => {
                        self.next();
                        c = n;
                    }
                    Some(_) => {}
                }
            }
            out.push(c);
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && "*#$@!?-".contains(ch) {
                self.next();
                name.push(ch);
                return name;
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.vars.get_var(name)
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        if self.peek().is_none() {
            return Err(missing_brace());
        }
        let name = self.name();
        let value = self.lookup(&name);
        let ch = self.next().ok_or_else(missing_brace)?;
        if name.is_empty() {
            return Err(ExpandError("bad substitution".into()));
        }
        match ch {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let modifier = self.next().ok_or_else(missing_brace)?;
                let (word, found) = self.process_stop_on(Some('}'))?;
                if !found {
                    return Err(missing_brace());
                }
                let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                match modifier {
                    '+' => Ok(if set_nonempty { word } else { String::new() }),
                    '-' => Ok(if set_nonempty {
                        value.unwrap_or_default()
                    } else {
                        word
                    }),
                    '?' => {
                        if set_nonempty {
                            Ok(value.unwrap_or_default())
                        } else {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            Err(ExpandError(format!("{name}: {msg}")))
                        }
                    }
                    other => Err(ExpandError(format!(
                        "unsupported modifier ({other}) in substitution"
                    ))),
                }
            }
            '-' | '+' | '?' => {
                let (word, found) = self.process_stop_on(Some('}'))?;
                if !found {
                    return Err(missing_brace());
                }
                match (ch, value) {
                    ('-', Some(v)) => Ok(v),
                    ('-', None) => Ok(word),
                    ('+', Some(_)) => Ok(word),
                    ('+', None) => Ok(String::new()),
                    ('?', Some(v)) => Ok(v),
                    _ => {
                        let msg = if word.is_empty() {
                            "is not allowed to be unset".to_string()
                        } else {
                            word
                        };
                        Err(ExpandError(format!("{name}: {msg}")))
                    }
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(ch);
                if longest {
                    self.next();
                }
                let (pattern, found) = self.process_stop_on(Some('}'))?;
                if !found {
                    return Err(missing_brace());
                }
                let v = value.unwrap_or_default();
                Ok(trim_pattern(&v, &pattern, ch == '#', longest))
            }
            other => Err(ExpandError(format!(
                "unsupported modifier ({other}) in substitution"
            ))),
        }
    }
}

/// `${v#pat}` / `${v##pat}` (prefix) and `${v%pat}` / `${v%%pat}` (suffix), with
/// shell glob patterns (`*`, `?`, `[...]`).
fn trim_pattern(v: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let chars: Vec<char> = v.chars().collect();
    let n = chars.len();
    let candidates: Vec<usize> = if longest {
        (0..=n).rev().collect()
    } else {
        (0..=n).collect()
    };
    for len in candidates {
        let (part, rest): (String, String) = if prefix {
            (chars[..len].iter().collect(), chars[len..].iter().collect())
        } else {
            (
                chars[n - len..].iter().collect(),
                chars[..n - len].iter().collect(),
            )
        };
        if crate::dockerignore::glob_match(pattern, &part, false) {
            return rest;
        }
    }
    v.to_string()
}

fn word(lx: &Lexer, s: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
    lx.process_word(s, vars)
}

fn words_each(lx: &Lexer, v: &[String], vars: &dyn Vars) -> Result<Vec<String>, ExpandError> {
    v.iter().map(|s| word(lx, s, vars)).collect()
}

/// Expand the parts of an instruction that BuildKit expands: ENV and LABEL keys
/// and values, ARG defaults, COPY/ADD sources, destination and flags, WORKDIR,
/// USER, EXPOSE (split into words), VOLUME, STOPSIGNAL. RUN, CMD, ENTRYPOINT,
/// HEALTHCHECK, SHELL and ONBUILD are left untouched (the shell expands them at
/// run time). Heredoc contents are not expanded here.
pub fn expand_instruction(
    lx: &Lexer,
    instr: &Instruction,
    vars: &dyn Vars,
) -> Result<Instruction, ExpandError> {
    Ok(match instr {
        Instruction::Env(kv) => Instruction::Env(expand_pairs(lx, kv, vars)?),
        Instruction::Label(kv) => Instruction::Label(expand_pairs(lx, kv, vars)?),
        Instruction::Arg(decls) => Instruction::Arg(
            decls
                .iter()
                .map(|d| {
                    Ok(crate::dockerfile::instruction::ArgDecl {
                        name: d.name.clone(),
                        default: d.default.as_ref().map(|v| word(lx, v, vars)).transpose()?,
                    })
                })
                .collect::<Result<_, ExpandError>>()?,
        ),
        Instruction::Copy(c) => Instruction::Copy(Copy {
            sources: words_each(lx, &c.sources, vars)?,
            dest: word(lx, &c.dest, vars)?,
            from: c.from.as_ref().map(|v| word(lx, v, vars)).transpose()?,
            chown: c.chown.as_ref().map(|v| word(lx, v, vars)).transpose()?,
            chmod: c.chmod.as_ref().map(|v| word(lx, v, vars)).transpose()?,
            checksum: c.checksum.as_ref().map(|v| word(lx, v, vars)).transpose()?,
            ..c.clone()
        }),
        Instruction::Workdir(p) => Instruction::Workdir(word(lx, p, vars)?),
        Instruction::User(u) => Instruction::User(word(lx, u, vars)?),
        Instruction::StopSignal(s) => Instruction::StopSignal(word(lx, s, vars)?),
        Instruction::Volume(v) => {
            let out = words_each(lx, v, vars)?;
            if out.iter().any(|v| v.trim().is_empty()) {
                return Err(ExpandError(
                    "VOLUME specified can not be an empty string".into(),
                ));
            }
            Instruction::Volume(out)
        }
        Instruction::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(lx.process_words(p, vars)?);
            }
            Instruction::Expose(out)
        }
        other => other.clone(),
    })
}

fn expand_pairs(
    lx: &Lexer,
    kv: &[(String, String)],
    vars: &dyn Vars,
) -> Result<Vec<(String, String)>, ExpandError> {
    kv.iter()
        .map(|(k, v)| Ok((word(lx, k, vars)?, word(lx, v, vars)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("FOO", "foo"),
            ("EMPTY", ""),
            ("SP", "a b"),
            ("PATHV", "/usr/local/bin/python"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn process_word_table() {
        let lx = Lexer::new('\\');
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$FOO", "foo"),
            ("${FOO}", "foo"),
            ("x${FOO}y", "xfooy"),
            ("$FOO.bar", "foo.bar"),
            ("$UNSET", ""),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${UNSET-def}", "def"),
            ("${FOO:-def}", "foo"),
            ("${FOO:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${FOO}x}", "foox"),
            ("'$FOO'", "$FOO"),
            ("\"$FOO\"", "foo"),
            ("\"a 'b' $FOO\"", "a 'b' foo"),
            ("\\$FOO", "$FOO"),
            ("\"\\$FOO\"", "$FOO"),
            ("\"\\a\"", "\\a"),
            ("a\\ b", "a b"),
            ("trailing\\", "trailing"),
            ("$", "$"),
            ("a$ b", "a$ b"),
            ("$1x", "x"),
            ("${PATHV##*/}", "python"),
            ("${PATHV#*/}", "usr/local/bin/python"),
            ("${PATHV%/*}", "/usr/local/bin"),
            ("${PATHV%%/*}", ""),
            ("hello world", "hello world"),
            ("\"a \\\"b\\\"\"", "a \"b\""),
            ("'x y'", "x y"),
            ("\"'$FOO'\"", "'foo'"),
            ("'\"$FOO\"'", "\"$FOO\""),
            ("${FOO}${FOO}", "foofoo"),
            ("$FOO$", "foo$"),
        ];
        for (input, want) in cases {
            assert_eq!(
                lx.process_word(input, &env()).as_deref(),
                Ok(*want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn backtick_escape() {
        let lx = Lexer::new('`');
        assert_eq!(lx.process_word("`$FOO", &env()).unwrap(), "$FOO");
        assert_eq!(lx.process_word("C:\\path", &env()).unwrap(), "C:\\path");
    }

    #[test]
    fn errors_table() {
        let lx = Lexer::new('\\');
        let cases: &[(&str, &str)] = &[
            (
                "'abc",
                "unexpected end of statement while looking for matching single-quote",
            ),
            (
                "\"abc",
                "unexpected end of statement while looking for matching double-quote",
            ),
            ("${FOO", "syntax error: missing '}'"),
            ("${FOO:-x", "syntax error: missing '}'"),
            ("${FOO^x}", "unsupported modifier (^) in substitution"),
            ("${UNSET:?must be set}", "UNSET: must be set"),
            ("${UNSET?}", "UNSET: is not allowed to be unset"),
            ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
            ("${}", "bad substitution"),
        ];
        for (input, want) in cases {
            assert_eq!(
                lx.process_word(input, &env()),
                Err(ExpandError(want.to_string())),
                "input {input:?}"
            );
        }
        // `${EMPTY?}` is fine: set, even if empty.
        assert_eq!(lx.process_word("${EMPTY?}", &env()).unwrap(), "");
    }

    #[test]
    fn words_split() {
        let lx = Lexer::new('\\');
        assert_eq!(
            lx.process_words("80 $SP \"c d\"", &env()).unwrap(),
            vec!["80", "a", "b", "c d"]
        );
        assert_eq!(
            lx.process_words("  ", &env()).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn raw_modes_keep_quotes_and_unset() {
        let lx = Lexer {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            lx.process_words("cat <<'EOF' $X", &env()).unwrap(),
            vec!["cat", "<<'EOF'", "$X"]
        );
    }
}
