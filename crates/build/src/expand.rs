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
    /// Errors read like BuildKit's: `failed to process "${X": syntax error: missing '}'`.
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
        let mut st = State::new(self, word, vars);
        match st.process_stop_on(None, self.raw_escapes) {
            Ok(s) => Ok(s),
            Err(e) => Err(ExpandError(format!("failed to process {word:?}: {}", e.0))),
        }
    }

    /// Expand and split into words on unquoted whitespace (also whitespace that
    /// comes from an unquoted variable value), like a shell.
    pub fn process_words(&self, word: &str, vars: &dyn Vars) -> Result<Vec<String>, ExpandError> {
        let mut st = State::new(self, word, vars);
        match st.process_stop_on(None, self.raw_escapes) {
            Ok(_) => Ok(st.words.finish()),
            Err(e) => Err(ExpandError(format!("failed to process {word:?}: {}", e.0))),
        }
    }
}

/// BuildKit's word splitter: empty words are never produced.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if !self.cur.is_empty() {
                self.words.push(std::mem::take(&mut self.cur));
            }
        } else {
            self.cur.push(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.cur.push(c);
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.cur.push_str(s);
    }
    fn finish(mut self) -> Vec<String> {
        if !self.cur.is_empty() {
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
    raw_escapes: bool,
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
            raw_escapes: lx.raw_escapes,
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

    /// Process until `stop` (consumed) or the end of input (an error when a
    /// stop character was expected). Only the top level feeds word splitting.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<String, ExpandError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let top = stop.is_none();
        let r = self.stop_on_inner(stop, top);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>, top: bool) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok(out);
            }
            match ch {
                '\'' | '"' | '$' => {
                    let s = match ch {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.dollar()?,
                    };
                    if top {
                        if ch == '$' {
                            self.words.add_string(&s);
                        } else {
                            self.words.add_raw_string(&s);
                        }
                    }
                    out.push_str(&s);
                }
                _ => {
                    self.next();
                    let mut c = ch;
                    if c == self.lx.escape {
                        if self.raw_escapes {
                            if top {
                                self.words.add_raw_char(c);
                            }
                            out.push(c);
                        }
                        match self.next() {
                            Some(n) => c = n,
                            None => break, // escape at end of word is dropped
                        }
                        if top {
                            self.words.add_raw_char(c);
                        }
                    } else if top {
                        self.words.add_char(c);
                    }
                    out.push(c);
                }
            }
        }
        match stop {
            Some(c) => Err(ExpandError(format!(
                "unexpected end of statement while looking for matching {c}"
            ))),
            None => Ok(out),
        }
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
                if self.raw_escapes {
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
            if name.is_empty() && "@*#?-$!0".contains(ch) {
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

    /// A `${...}` sub-word up to `stop`; a missing stop is reported as BuildKit does.
    fn sub_word(
        &mut self,
        stop: char,
        raw_escapes: bool,
        missing: &str,
    ) -> Result<String, ExpandError> {
        self.process_stop_on(Some(stop), raw_escapes).map_err(|e| {
            if self.peek().is_none() {
                ExpandError(missing.to_string())
            } else {
                e
            }
        })
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
        match self.peek() {
            None => return Err(missing_brace()),
            Some('{' | '}' | ':') => {
                return Err(ExpandError("syntax error: bad substitution".into()))
            }
            _ => {}
        }
        let name = self.name();
        // BuildKit reports a bare `${NAME` as an odd modifier; say what is wrong.
        let mut ch = self.next().ok_or_else(missing_brace)?;
        let mut chs = ch.to_string();
        let value = self.lookup(&name);
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return Ok(match value {
                    Some(v) => v,
                    None if self.lx.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            '/' => return self.replace(&name, value),
            ':' => {
                null_is_unset = true;
                ch = self.next().ok_or_else(missing_brace)?;
                chs.push(ch);
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => {
                return Err(ExpandError(format!(
                    "unsupported modifier ({chs}) in substitution"
                )))
            }
        }
        let raw = ch == '#' || ch == '%';
        let mut word = self.sub_word('}', raw, "syntax error: missing '}'")?;
        if self.lx.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match ch {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                None => Err(ExpandError(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                ))),
                Some(v) if null_is_unset && v.is_empty() => Err(ExpandError(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                ))),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let greedy = word.starts_with(ch);
                if greedy {
                    word.remove(0);
                }
                trim_pattern(&value.unwrap_or_default(), &word, ch == '#', greedy)
            }
            _ => Err(ExpandError(format!(
                "unsupported modifier ({chs}) in substitution"
            ))),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn replace(&mut self, name: &str, value: Option<String>) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = self.sub_word('/', true, "syntax error: missing '/' in ${}")?;
        let replacement = self.sub_word('}', true, "syntax error: missing '}'")?;
        let Some(value) = value else {
            if self.lx.skip_unset {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let re = shell_pattern_regex(&pattern, true, false)?;
        let rep = regex::NoExpand(&replacement);
        Ok(if all {
            re.replace_all(&value, rep).into_owned()
        } else {
            re.replace(&value, rep).into_owned()
        })
    }
}

/// BuildKit's `convertShellPatternToRegex`: `*` (greedy or not), `?`, `\`
/// escapes of `*`, `?`, `\`; no bracket expressions.
fn shell_pattern_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<regex::Regex, ExpandError> {
    let bad = |e: String| ExpandError(format!("invalid pattern ({pattern}) in substitution: {e}"));
    let mut re = String::from(if anchored { "^" } else { "" });
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => re.push_str(if greedy { ".*" } else { ".*?" }),
            '?' => re.push('.'),
            '\\' => {
                if matches!(it.peek(), Some('}' | '/')) {
                    continue;
                }
                match it.next() {
                    Some(n @ ('*' | '?' | '\\')) => {
                        re.push('\\');
                        re.push(n);
                    }
                    Some(n) => return Err(bad(format!("invalid escape '\\{n}'"))),
                    None => return Err(bad("invalid escape '\\'".into())),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    regex::Regex::new(&re).map_err(|e| bad(e.to_string()))
}

/// `${v#pat}` / `${v##pat}` (prefix) and `${v%pat}` / `${v%%pat}` (suffix).
fn trim_pattern(v: &str, pattern: &str, prefix: bool, greedy: bool) -> Result<String, ExpandError> {
    if prefix {
        let re = shell_pattern_regex(pattern, greedy, true)?;
        return Ok(match re.find(v) {
            Some(m) => v[m.end()..].to_string(),
            None => v.to_string(),
        });
    }
    // Shortest/longest rightmost match: reverse both and trim a prefix.
    let rev: String = v.chars().rev().collect();
    let trimmed = trim_pattern(&rev, &reverse_pattern(pattern), true, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverse a pattern keeping `\x` escapes in order (`a\*c` → `c\*a`).
fn reverse_pattern(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut units: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            units.push(format!("\\{}", chars[i + 1]));
            i += 2;
        } else {
            units.push(chars[i].to_string());
            i += 1;
        }
    }
    units.into_iter().rev().collect()
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
            ("${PATHV/bin/sbin}", "/usr/local/sbin/python"),
            ("${PATHV//\\//:}", ":usr:local:bin:python"),
            ("${PATHV/o*/X}", "/usr/lX"),
            ("${UNSET/a/b}", ""),
            ("${FOO#f?}", "o"),
            ("${FOO%o}", "fo"),
            ("${FOO%%o*}", "f"),
            ("${FOO#[f]}", "foo"),
            ("$0x", "x"),
        ];
        for (input, want) in cases {
            assert_eq!(
                lx.process_word(input, &env()).as_deref(),
                Ok(*want),
                "input {input:?}"
            );
        }
    }

    /// Behaviour vectors from BuildKit's shell lexer tests (TestProcessWithMatches).
    #[test]
    fn buildkit_lexer_vectors() {
        let lx = Lexer::new('\\');
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let xx: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
        let cases: &[Case] = &[
            ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", xx, Some("xxx  ccc")),
            ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", xx, Some("xxx bbb ccc")),
            ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", xx, Some("aaa bbb ")),
            ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", xx, Some("aaa  ")),
            ("${FOO?aaa}", xx, Some("xxx")),
            ("${BAR?bbb}", xx, Some("")),
            ("${BAZ?ccc}", xx, None),
            ("${BAR:?bbb}", xx, None),
            ("${BAZ:?}", xx, None),
            ("${FOO=aaa}", xx, None),
            ("${FOO=}", &[], None),
            ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], Some("x")),
            ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
            ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
            ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
            ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
            ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
            ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], Some(".xxyy.")),
            ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
            ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
            (
                "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
                Some("/foo.*/*.txt - /foo..*.txt"),
            ),
            (
                "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
                Some("/tmp/bar.txt - /bar.txt"),
            ),
            (
                "${FOO/$NEEDLE/$R} - ${FOO//$NEEDLE/$R}",
                &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("R", "/")],
                Some("/foo/b/c.txt - /foo/c.txt"),
            ),
            ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], Some("\\/tmp\\/foo.txt")),
            ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], Some("wwxxyy")),
            ("${FOO//ww}", &[("FOO", "xxyy")], None),
            ("${FOO//}", &[("FOO", "xxyy")], None),
            ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
            ("${FOO///}", &[], Some("")),
            (
                "something-${V}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
                &[("V", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")],
                Some("something-v1.2.3.linux-arm-v7.tar.gz"),
            ),
        ];
        for (input, env, want) in cases {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let got = lx.process_word(input, &env);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
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
            ("${}", "syntax error: bad substitution"),
            ("${:-x}", "syntax error: bad substitution"),
            ("${FOO:x}", "unsupported modifier (:x) in substitution"),
            ("${FOO/a", "syntax error: missing '/' in ${}"),
            (
                "${FOO#\\a}",
                "invalid pattern (\\a) in substitution: invalid escape '\\a'",
            ),
        ];
        for (input, want) in cases {
            let want = format!("failed to process {input:?}: {want}");
            assert_eq!(
                lx.process_word(input, &env()),
                Err(ExpandError(want)),
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
