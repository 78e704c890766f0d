//! Heredoc words (`<<EOF`, `<<-"EOF"`, `3<<EOF`) as BuildKit recognises them.

use crate::expand::Lexer;

/// What a heredoc word says, before its content is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocWord {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
}

/// Parse one word as a heredoc opener; `None` if it is not one.
pub(crate) fn parse_heredoc_word(word: &str) -> Option<HeredocWord> {
    let digits = word.chars().take_while(|c| c.is_ascii_digit()).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let fd = if digits == 0 {
        0
    } else {
        word[..digits].parse().ok()?
    };
    let empty: Vec<(String, String)> = Vec::new();
    let plain = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let words = plain.process_words(rest, &empty).ok()?;
    if words.len() != 1 {
        return None;
    }
    let raw = Lexer {
        raw_quotes: true,
        ..plain
    };
    let raw_words = raw.process_words(rest, &empty).ok()?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw_words.len() == 1 && quotes(&words[0]) == quotes(&raw_words[0]);
    Some(HeredocWord {
        name: words[0].clone(),
        expand,
        chomp,
        fd,
    })
}

/// The heredoc openers on an instruction line, in order.
pub(crate) fn heredocs_in_line(line: &str) -> Vec<HeredocWord> {
    let lx = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let empty: Vec<(String, String)> = Vec::new();
    let words = lx.process_words(line, &empty).unwrap_or_default();
    words.iter().filter_map(|w| parse_heredoc_word(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc_word("<<EOF").unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.fd),
            ("EOF", true, false, 0)
        );
        let h = parse_heredoc_word("<<-'EOT'").unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.chomp), ("EOT", false, true));
        let h = parse_heredoc_word("3<<\"X\"").unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.fd), ("X", false, 3));
        assert!(parse_heredoc_word("<<").is_none());
        assert!(parse_heredoc_word("a<<EOF").is_none());
        assert!(parse_heredoc_word("<<<EOF").is_none());
        let names: Vec<_> = heredocs_in_line("RUN cat <<A > a && cat <<-'B' > b")
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(names, vec!["A", "B"]);
    }
}
