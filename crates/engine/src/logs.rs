//! The log multiplexer's formatting: `web-1  | line`, prefixes padded to the
//! longest name plus one, colored in docker compose's order. Pure.

/// docker compose's color order: cyan, yellow, green, magenta, blue, then
/// the bright variants.
const COLORS: [&str; 10] = [
    "36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1",
];

/// Formats lines for a fixed set of containers.
#[derive(Debug, Clone)]
pub struct Prefixer {
    width: usize,
    color: bool,
    prefix: bool,
    timestamps: bool,
    names: Vec<String>,
}

impl Prefixer {
    pub fn new(color: bool, prefix: bool, timestamps: bool) -> Prefixer {
        Prefixer {
            width: 0,
            color,
            prefix,
            timestamps,
            names: Vec::new(),
        }
    }

    /// Register a container (its color is the next in the order).
    pub fn add(&mut self, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
        self.width = self.width.max(name.len() + 1);
    }

    fn color_of(&self, name: &str) -> &'static str {
        let i = self.names.iter().position(|n| n == name).unwrap_or(0);
        COLORS[i % COLORS.len()]
    }

    /// One output line (without the newline). `time` is RFC 3339.
    pub fn line(&self, name: &str, time: &str, text: &str) -> String {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let mut out = String::new();
        if self.prefix {
            // compose: `%-{longest+1}s |`, then a space.
            let p = format!("{name:<w$} |", w = self.width.max(name.len() + 1));
            if self.color {
                out.push_str(&format!("\x1b[{}m{p}\x1b[0m ", self.color_of(name)));
            } else {
                out.push_str(&p);
                out.push(' ');
            }
        }
        if self.timestamps {
            out.push_str(time);
            out.push(' ');
        }
        out.push_str(text);
        out
    }

    /// A line about a container, not from it (`web-1 exited with code 0`).
    pub fn event(&self, name: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{name} {text}\x1b[0m", self.color_of(name))
        } else {
            format!("{name} {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_like_compose() {
        let mut p = Prefixer::new(false, true, false);
        p.add("redis-1");
        p.add("web-1");
        assert_eq!(p.line("web-1", "", "hello\n"), "web-1    | hello");
        assert_eq!(p.line("redis-1", "", "x"), "redis-1  | x");
    }

    #[test]
    fn colors_in_order() {
        let mut p = Prefixer::new(true, true, false);
        for n in ["a", "b", "c", "d", "e", "f"] {
            p.add(n);
        }
        assert_eq!(p.line("a", "", "x"), "\x1b[36ma  |\x1b[0m x");
        assert!(p.line("b", "", "x").starts_with("\x1b[33m"));
        assert!(p.line("e", "", "x").starts_with("\x1b[34m"));
        assert!(p.line("f", "", "x").starts_with("\x1b[36;1m"));
    }

    #[test]
    fn no_prefix_and_timestamps() {
        let p = Prefixer::new(false, false, true);
        assert_eq!(
            p.line("a", "2024-01-01T00:00:00Z", "x\n"),
            "2024-01-01T00:00:00Z x"
        );
    }
}
