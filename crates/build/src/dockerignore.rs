//! `.dockerignore`, matched the way Docker does (moby/patternmatcher):
//!
//! - one pattern per line; blank lines and lines starting with `#` are skipped;
//!   surrounding whitespace is trimmed;
//! - patterns are cleaned like Go's `filepath.Clean`, a leading `/` is dropped
//!   (so `/foo`, `./foo` and `foo` are the same);
//! - `*` matches any run of non-`/` characters, `?` one non-`/` character,
//!   `[a-z]`/`[^a-z]` classes, `\` escapes, `**` any number of directories;
//! - a pattern that matches a directory also matches everything below it;
//! - `!pattern` re-includes; the last matching line wins.
//!
//! The Dockerfile and `.dockerignore` may be excluded: they are still read by the
//! build, just not visible to `COPY`/`ADD`.

use std::path::Path;

use regex::Regex;

use crate::Error;

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern text (without `!`).
    pub text: String,
    /// `!pattern`: re-include.
    pub exclusion: bool,
    regex: Regex,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    /// Patterns in file order.
    pub patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parse `.dockerignore` text.
    pub fn parse(text: &str) -> Result<DockerIgnore, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                if exclusion {
                    return Err(Error::Invalid(format!(
                        ".dockerignore line {}: illegal exclusion pattern: \"!\"",
                        i + 1
                    )));
                }
                continue;
            }
            let mut cleaned = go_clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            if !glob_valid(&cleaned) {
                return Err(Error::Invalid(format!(
                    ".dockerignore line {}: invalid pattern {line:?}: syntax error in pattern",
                    i + 1
                )));
            }
            let regex = compile(&cleaned).map_err(|e| {
                Error::Invalid(format!(
                    ".dockerignore line {}: invalid pattern {line:?}: {e}",
                    i + 1
                ))
            })?;
            patterns.push(Pattern {
                text: cleaned,
                exclusion,
                regex,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Read `<context>/.dockerignore` (empty when the file does not exist).
    pub fn read(context: &Path) -> Result<DockerIgnore, Error> {
        match std::fs::read_to_string(context.join(".dockerignore")) {
            Ok(t) => DockerIgnore::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(e) => Err(Error::Invalid(format!(
                "cannot read {}/.dockerignore: {e}",
                context.display()
            ))),
        }
    }

    /// Whether any `!` patterns exist (then an excluded directory may still
    /// contain included files and must be walked).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = go_clean(path.trim_start_matches('/'));
        if path == "." || path.is_empty() {
            return false;
        }
        let parents: Vec<&str> = {
            let mut v = Vec::new();
            let mut idx = 0;
            while let Some(p) = path[idx..].find('/') {
                v.push(&path[..idx + p]);
                idx += p + 1;
            }
            v
        };
        let mut matched = false;
        for pat in &self.patterns {
            // An inclusion can only flip a match, an exclusion only a non-match.
            if pat.exclusion != matched {
                continue;
            }
            let hit = pat.matches(&path) || parents.iter().any(|p| pat.matches(p));
            if hit {
                matched = !pat.exclusion;
            }
        }
        matched
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Translate a pattern to a regex the way moby/patternmatcher does.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if in_class {
            // Class bodies pass through (ranges, `^`), escaping what Rust's
            // regex treats specially inside classes.
            match ch {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    if let Some(&n) = chars.get(i) {
                        i += 1;
                        re.push_str(&regex::escape(&n.to_string()));
                    }
                }
                '[' | '&' | '~' | '-' if ch != '-' || chars.get(i) == Some(&']') => {
                    re.push('\\');
                    re.push(ch);
                }
                c => re.push(c),
            }
            continue;
        }
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                if let Some(&n) = chars.get(i) {
                    i += 1;
                    re.push_str(&regex::escape(&n.to_string()));
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' => {
                in_class = true;
                re.push('[');
            }
            ']' => re.push_str("\\]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re)
}

/// Go's `filepath.Match` (`slash_special = true`: `*` and `?` do not match `/`)
/// or a shell pattern (`false`: they do). Malformed patterns match nothing.
pub fn glob_match(pattern: &str, name: &str, slash_special: bool) -> bool {
    if !glob_valid(pattern) {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n, slash_special).unwrap_or(false)
}

/// Whether a path contains glob metacharacters (BuildKit's `containsWildcards`).
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn glob_at(p: &[char], n: &[char], slash: bool) -> Option<bool> {
    let mut pi = 0;
    let mut ni = 0;
    // Backtracking point for the last `*`.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && !(slash && n[ni] == '/') => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (ok, next) = class(p, pi, n[ni])?;
                    if ok && !(slash && n[ni] == '/') {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                '\\' if pi + 1 >= p.len() => return None,
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Some(true);
        }
        // Mismatch: extend the last star by one character, if allowed.
        match star {
            Some((sp, sn)) if sn < n.len() && !(slash && n[sn] == '/') => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
}

/// Match one character against the class starting at `p[start] == '['`, with
/// Go's rules. Returns (matched, index after `]`); `None` if malformed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut nrange = 0;
    loop {
        if p.get(i) == Some(&']') && nrange > 0 {
            return Some((matched != negated, i + 1));
        }
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        nrange += 1;
    }
}

/// Go's `getEsc`: one (possibly escaped) class character; an unescaped `-` or
/// `]` here, or running off the end, is a malformed pattern.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    let ch = *p.get(i)?;
    if ch == '-' || ch == ']' {
        return None;
    }
    let (ch, next) = if ch == '\\' {
        (*p.get(i + 1)?, i + 2)
    } else {
        (ch, i + 1)
    };
    if next >= p.len() {
        return None;
    }
    Some((ch, next))
}

/// Whether a pattern is well-formed for Go's `filepath.Match` (classes closed
/// and valid, no trailing `\`).
pub fn glob_valid(pattern: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return false;
                }
                i += 2;
            }
            '[' => match class(&p, i, '\0') {
                Some((_, next)) => i = next,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_table() {
        let di = DockerIgnore::parse(
            "# comment\n\n  *.pyc  \n/build\n./docs/*.md\n!docs/keep.md\n**/node_modules\ntmp?\nsecret/**\n!secret/public\nDockerfile\n.dockerignore\n[a-c].txt\n",
        )
        .unwrap();
        let cases: &[(&str, bool)] = &[
            ("app.pyc", true),
            ("sub/app.pyc", false), // `*` does not cross `/`
            ("build", true),
            ("build/out/x.o", true), // parent dir matched
            ("docs/a.md", true),
            ("docs/keep.md", false), // re-included, last match wins
            ("docs/sub/a.md", false),
            ("node_modules/x/y.js", true),
            ("a/b/node_modules/z", true),
            ("tmp1", true),
            ("tmp12", false),
            ("secret/key", true),
            ("secret/public", false),
            ("secret", false), // `secret/**` matches below it, not the dir itself
            ("Dockerfile", true),
            (".dockerignore", true),
            ("b.txt", true),
            ("d.txt", false),
            ("app.py", false),
            (".", false),
        ];
        for (path, want) in cases {
            assert_eq!(di.is_excluded(path), *want, "{path}");
        }
        assert!(di.has_exclusions());
    }

    #[test]
    fn last_match_wins_both_ways() {
        let di = DockerIgnore::parse("*.md\n!README.md\nREADME.md\n").unwrap();
        assert!(di.is_excluded("README.md"));
        let di = DockerIgnore::parse("*\n!src\n").unwrap();
        assert!(!di.is_excluded("src/main.rs"));
        assert!(di.is_excluded("target"));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(go_clean("./a//b/../c/"), "a/c");
        assert_eq!(go_clean("../x"), "../x");
        assert_eq!(go_clean("/../x"), "/x");
        assert_eq!(go_clean(""), ".");
        assert_eq!(go_clean("a/.."), ".");
    }

    /// Vectors from moby/patternmatcher's tests (single pattern, parent matches count).
    #[test]
    fn patternmatcher_vectors() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**/", "file", true),
            ("**", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            ("[\\]a]", "]", true),
            ("[x\\-]", "-", true),
        ];
        for (pattern, path, want) in cases {
            let di = DockerIgnore::parse(pattern).unwrap();
            assert_eq!(
                di.is_excluded(path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
        let multi: &[(&str, &str, bool)] = &[
            ("**\n!util/docker/web", "util/docker/web/foo", false),
            (
                "**\n!util/docker/web\nutil/docker/web/foo",
                "util/docker/web/foo",
                true,
            ),
            (
                "**\n!dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            ("docs\n!docs/README.md", "docs/README.md", false),
            ("docs/\n!docs/README.md", "docs/README.md", false),
            ("!fileutils.go\n*.go", "fileutils.go", true),
        ];
        for (patterns, path, want) in multi {
            assert_eq!(
                DockerIgnore::parse(patterns).unwrap().is_excluded(path),
                *want,
                "{patterns:?} {path:?}"
            );
        }
        for bad in ["!", "[", "[]a]", "a[", "[x-]", "\\"] {
            assert!(DockerIgnore::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Go's filepath.Match vectors.
    #[test]
    fn go_filepath_match_vectors() {
        let ok: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a\u{263a}b", true),
            ("a[^a]b", "a\u{263a}b", true),
            ("a???b", "a\u{263a}b", false),
            ("a[^a][^a][^a]b", "a\u{263a}b", false),
            ("[a-\u{3b6}]*", "\u{3b1}", true),
            ("*[a-\u{3b6}]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for (p, n, want) in ok {
            assert!(glob_valid(p), "{p:?} should be valid");
            assert_eq!(glob_match(p, n, true), *want, "{p:?} vs {n:?}");
        }
        for bad in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a/b[",
        ] {
            assert!(!glob_valid(bad), "{bad:?} should be malformed");
            assert!(!glob_match(bad, "a", true));
        }
    }

    #[test]
    fn filepath_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("*", ".hidden", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[", "[", false), // malformed
            ("", "", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n, true), *want, "{p} vs {n}");
        }
        assert!(glob_match("*/", "usr/local/", false));
    }
}
