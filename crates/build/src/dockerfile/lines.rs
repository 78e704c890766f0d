//! Physical lines → logical lines: parser directives, comments, line
//! continuations, empty continuation lines and heredoc bodies, as BuildKit's
//! `parser.Parse` does.

use super::heredoc::heredocs_in_line;
use super::instruction::{Directives, Heredoc, Warning};
use super::words::{extract_flags, parse_json, Json};
use super::ParseError;

/// One instruction's text with its line span.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

/// Output of the line scanner.
pub(crate) struct Scanned {
    pub directives: Directives,
    pub lines: Vec<LogicalLine>,
    pub warnings: Vec<Warning>,
}

struct DirectiveState {
    done: bool,
    seen: Vec<String>,
    d: Directives,
}

impl DirectiveState {
    /// BuildKit: directives are `# key=value` lines at the very top; the first
    /// line that is not one (blank, other comment, instruction) ends them.
    fn feed(&mut self, line: &str, lineno: usize) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let body = body.trim_start();
        let Some((key, value)) = body.split_once('=') else {
            self.done = true;
            return Ok(());
        };
        let key = key.trim_end();
        let value = value.trim();
        let valid_key = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_key || value.is_empty() {
            self.done = true;
            return Ok(());
        }
        let k = key.to_ascii_lowercase();
        if !matches!(k.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&k) {
            return Err(ParseError::new(
                lineno,
                format!("only one {k} parser directive can be used"),
            ));
        }
        self.seen.push(k.clone());
        match k.as_str() {
            "escape" => {
                self.d.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError::new(
                            lineno,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => self.d.syntax = Some(value.to_string()),
            _ => self.d.check = Some(value.to_string()),
        }
        Ok(())
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strip a trailing continuation (escape char followed only by blanks), unless
/// the escape char is itself escaped. Returns the line and whether it continues.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if !before.ends_with(escape) || before.is_empty() {
            return (before.to_string(), true);
        }
    }
    (line.to_string(), false)
}

/// Whether the instruction on this line may carry heredocs (RUN, COPY, ADD, or
/// ONBUILD of one of those), not in JSON form.
fn can_contain_heredoc(line: &str) -> bool {
    let mut text = line.trim_start();
    for _ in 0..2 {
        let (cmd, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let cmd = cmd.to_ascii_lowercase();
        if cmd == "onbuild" {
            text = rest.trim_start();
            continue;
        }
        if !matches!(cmd.as_str(), "run" | "copy" | "add") {
            return false;
        }
        let (_, args) = extract_flags(rest);
        return !matches!(parse_json(&args), Ok(Json::Array(_)));
    }
    false
}

/// Scan the whole file.
pub(crate) fn scan(text: &str) -> Result<Scanned, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Lines with their newline removed (handles \n and \r\n).
    let physical: Vec<&str> = text.split_inclusive('\n').collect();
    let strip_nl = |l: &str| l.trim_end_matches(['\n', '\r']).to_string();
    let mut dir = DirectiveState {
        done: false,
        seen: Vec::new(),
        d: Directives::default(),
    };
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < physical.len() {
        let raw = strip_nl(physical[i]);
        let lineno = i + 1;
        i += 1;
        let stripped = raw.trim_start();
        dir.feed(stripped, lineno)?;
        if is_comment(stripped) {
            continue;
        }
        let escape = dir.d.escape;
        let (mut line, mut cont) = trim_continuation(stripped, escape);
        if !cont && line.trim().is_empty() {
            continue;
        }
        let start = lineno;
        let mut end = lineno;
        let mut empty_cont = false;
        while cont && i < physical.len() {
            let raw = strip_nl(physical[i]);
            end = i + 1;
            i += 1;
            dir.feed(&raw, end)?;
            if is_comment(&raw) {
                continue;
            }
            if raw.trim().is_empty() {
                empty_cont = true;
                continue;
            }
            let (piece, more) = trim_continuation(&raw, escape);
            line.push_str(&piece);
            cont = more;
        }
        if line.trim().is_empty() {
            continue;
        }
        if empty_cont {
            warnings.push(Warning {
                line: start,
                message: "empty continuation line found in instruction (empty continuation lines will become errors in a future release)".into(),
            });
        }
        let mut heredocs = Vec::new();
        if can_contain_heredoc(&line) {
            for word in heredocs_in_line(&line) {
                let mut content = String::new();
                let mut terminated = false;
                while i < physical.len() {
                    let body = physical[i];
                    end = i + 1;
                    i += 1;
                    let mut candidate = body.trim_end_matches(['\n', '\r']);
                    if word.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == word.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body);
                }
                if !terminated {
                    return Err(ParseError::new(start, "unterminated heredoc".to_string()));
                }
                heredocs.push(Heredoc {
                    name: word.name,
                    content,
                    expand: word.expand,
                    chomp: word.chomp,
                    fd: word.fd,
                });
            }
        }
        lines.push(LogicalLine {
            start,
            end,
            text: line,
            heredocs,
        });
    }
    Ok(Scanned {
        directives: dir.d,
        lines,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(usize, usize, String)> {
        scan(s)
            .unwrap()
            .lines
            .into_iter()
            .map(|l| (l.start, l.end, l.text))
            .collect()
    }

    #[test]
    fn continuations_and_comments() {
        let got = texts("FROM a\nRUN echo \\\n  # inner comment\n  hi \\\n\n  there\n# c\nCMD x\n");
        assert_eq!(
            got,
            vec![
                (1, 1, "FROM a".to_string()),
                (2, 6, "RUN echo   hi   there".to_string()),
                (8, 8, "CMD x".to_string()),
            ]
        );
        let s = scan("FROM a\nRUN a \\\n\n b\n").unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(s.warnings[0].line, 2);
    }

    #[test]
    fn crlf_and_bom() {
        assert_eq!(
            texts("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n"),
            vec![
                (1, 1, "FROM a".to_string()),
                (2, 3, "RUN x   y".to_string())
            ]
        );
    }

    #[test]
    fn escaped_escape_is_not_continuation() {
        assert_eq!(
            texts("RUN echo \\\\\nCMD x"),
            vec![(1, 1, "RUN echo \\\\".into()), (2, 2, "CMD x".into())]
        );
    }

    #[test]
    fn directives() {
        let s = scan(
            "# syntax=docker/dockerfile:1\n#escape=`\n# check=skip=all\nFROM a\nRUN a `\n b\n",
        )
        .unwrap();
        assert_eq!(s.directives.escape, '`');
        assert_eq!(s.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(s.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(s.lines[1].text, "RUN a  b");
        // After a blank line, a directive-looking comment is just a comment.
        let s = scan("\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(s.directives.escape, '\\');
        let s = scan("# foo=bar\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(s.directives.escape, '\\');
        assert_eq!(
            scan("# escape=`\n# escape=\\\nFROM a")
                .err()
                .unwrap()
                .to_string(),
            "dockerfile parse error on line 2: only one escape parser directive can be used"
        );
    }

    #[test]
    fn heredocs() {
        let s =
            scan("FROM a\nRUN <<EOF\necho hi\n  echo two\nEOF\nCOPY <<-X /f\n\tline\n\tX\nCMD y\n")
                .unwrap();
        assert_eq!(s.lines.len(), 4);
        assert_eq!(s.lines[1].heredocs[0].content, "echo hi\n  echo two\n");
        assert_eq!((s.lines[1].start, s.lines[1].end), (2, 5));
        assert_eq!(s.lines[2].heredocs[0].content, "\tline\n");
        assert!(s.lines[2].heredocs[0].chomp);
        assert_eq!(s.lines[3].text, "CMD y");
        // JSON form never has heredocs.
        let s = scan("FROM a\nRUN [\"cat\", \"<<EOF\"]\nCMD y\n").unwrap();
        assert!(s.lines[1].heredocs.is_empty());
        assert_eq!(
            scan("FROM a\nRUN <<EOF\nno end\n")
                .err()
                .unwrap()
                .to_string(),
            "dockerfile parse error on line 2: unterminated heredoc"
        );
    }
}
