//! Parse stage: YAML text → a [`Node`] tree that remembers where each value came from.
//!
//! We build the tree from `yaml-rust2` parser events rather than deserializing with
//! serde, because the events carry markers (line/column) and tags: every later stage
//! can then name `file:line:col` in its errors, and `!reset`/`!override` survive.
//! Anchors, aliases and merge keys (`<<`) are resolved here, with limits so that a
//! hostile file (alias bombs, deep nesting) gives an error instead of exhausting memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::Error;

/// Nesting deeper than this is refused (recursive stages would overflow the stack).
const MAX_DEPTH: usize = 200;
/// Total nodes an alias expansion may produce (guards against "billion laughs").
const MAX_NODES: usize = 250_000;

/// Where a value starts: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl Mark {
    pub fn new(file: &Arc<str>, m: &Marker) -> Mark {
        Mark {
            file: file.clone(),
            line: m.line(),
            col: m.col() + 1,
        }
    }

    /// A mark for values we synthesize (defaults), pointing at the file only.
    pub fn none(file: &Arc<str>) -> Mark {
        Mark {
            file: file.clone(),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// The compose-specific tags that steer merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: drop the value inherited from earlier files.
    Reset,
    /// `!override`: replace the earlier value instead of merging with it.
    Override,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// A scalar as written. `plain` scalars are typed later (int, bool, …); quoted
    /// ones and interpolated ones are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(IndexMap<String, Node>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Where the value starts.
    pub mark: Mark,
    /// Where its key starts, when the node is a mapping value (else = `mark`).
    pub key_mark: Mark,
    pub tag: Option<MergeTag>,
}

/// A plain scalar's YAML 1.2 core-schema type (what go-yaml v3 gives compose-go).
#[derive(Clone, Debug, PartialEq)]
pub enum Typed<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

pub fn resolve_plain(text: &str) -> Typed<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
        "true" | "True" | "TRUE" => return Typed::Bool(true),
        "false" | "False" | "FALSE" => return Typed::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Typed::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Typed::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Typed::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Typed::Int(i);
    }
    let looks_float = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_float {
        if let Ok(f) = text.parse::<f64>() {
            return Typed::Float(f);
        }
    }
    Typed::Str(text)
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (digits, radix) = if let Some(h) = rest.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = rest.strip_prefix("0o") {
        (o, 8)
    } else {
        (rest, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

impl Node {
    pub fn new(value: Value, mark: Mark) -> Node {
        Node {
            value,
            key_mark: mark.clone(),
            mark,
            tag: None,
        }
    }

    pub fn string(text: impl Into<String>, mark: Mark) -> Node {
        Node::new(
            Value::Scalar {
                text: text.into(),
                plain: false,
            },
            mark,
        )
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut IndexMap<String, Node>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar's text (any scalar, typed or not).
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The scalar's core-schema type.
    pub fn typed(&self) -> Option<Typed<'_>> {
        match &self.value {
            Value::Null => Some(Typed::Null),
            Value::Scalar { text, plain: true } => Some(resolve_plain(text)),
            Value::Scalar { text, plain: false } => Some(Typed::Str(text)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    pub fn is_null(&self) -> bool {
        matches!(self.typed(), Some(Typed::Null))
    }

    /// A short name of the node's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self.typed() {
            None if self.as_seq().is_some() => "a list",
            None => "a mapping",
            Some(Typed::Null) => "null",
            Some(Typed::Bool(_)) => "a boolean",
            Some(Typed::Int(_)) | Some(Typed::Float(_)) => "a number",
            Some(Typed::Str(_)) => "a string",
        }
    }

    /// Number of nodes in this tree (used to bound alias expansion).
    fn size(&self) -> usize {
        match &self.value {
            Value::Seq(s) => 1 + s.iter().map(Node::size).sum::<usize>(),
            Value::Map(m) => 1 + m.values().map(Node::size).sum::<usize>(),
            _ => 1,
        }
    }
}

/// Parse YAML text into one tree per document.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Vec<Node>, Error> {
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        error: None,
        nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = Mark::new(file, e.marker());
        return Err(Error::Invalid(format!("{m}: invalid YAML: {}", e.info())));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.docs)
}

enum Frame {
    Seq {
        items: Vec<Node>,
        mark: Mark,
        anchor: usize,
        tag: Option<MergeTag>,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending: Option<Node>,
        mark: Mark,
        anchor: usize,
        tag: Option<MergeTag>,
    },
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    error: Option<Error>,
    nodes: usize,
}

fn merge_tag(tag: &Option<Tag>, mark: &Mark) -> Result<Option<MergeTag>, Error> {
    let Some(tag) = tag else { return Ok(None) };
    match (tag.handle.as_str(), tag.suffix.as_str()) {
        ("!", "reset") => Ok(Some(MergeTag::Reset)),
        ("!", "override") => Ok(Some(MergeTag::Override)),
        ("!!", _) | ("tag:yaml.org,2002:", _) => Ok(None),
        (h, s) => Err(Error::Invalid(format!(
            "{mark}: unknown YAML tag \"{h}{s}\" (compose knows !reset and !override)"
        ))),
    }
}

impl Builder {
    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn handle(&mut self, ev: Event, marker: Marker) -> Result<(), Error> {
        let mark = Mark::new(&self.file, &marker);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let mtag = merge_tag(&tag, &mark)?;
                let explicit_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let plain = style == TScalarStyle::Plain && !explicit_str && mtag.is_none();
                let value = if plain && matches!(resolve_plain(&text), Typed::Null) {
                    Value::Null
                } else {
                    Value::Scalar { text, plain }
                };
                let mut node = Node::new(value, mark);
                node.tag = mtag;
                self.push_value(node, anchor)
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id) else {
                    return Err(Error::Invalid(format!("{mark}: unknown YAML alias")));
                };
                self.nodes += node.size();
                if self.nodes > MAX_NODES {
                    return Err(Error::Invalid(format!(
                        "{mark}: YAML aliases expand to more than {MAX_NODES} values; refusing"
                    )));
                }
                let mut node = node.clone();
                node.key_mark = mark.clone();
                self.push_value(node, 0)
            }
            Event::SequenceStart(anchor, tag) => {
                let tag = merge_tag(&tag, &mark)?;
                self.open(Frame::Seq {
                    items: Vec::new(),
                    mark,
                    anchor,
                    tag,
                })
            }
            Event::MappingStart(anchor, tag) => {
                let tag = merge_tag(&tag, &mark)?;
                self.open(Frame::Map {
                    entries: Vec::new(),
                    pending: None,
                    mark,
                    anchor,
                    tag,
                })
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    items,
                    mark,
                    anchor,
                    tag,
                }) => {
                    let mut node = Node::new(Value::Seq(items), mark);
                    node.tag = tag;
                    self.push_value(node, anchor)
                }
                _ => Err(Error::Invalid(format!("{mark}: unbalanced YAML sequence"))),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    entries,
                    mark,
                    anchor,
                    tag,
                    ..
                }) => {
                    let map = build_map(entries)?;
                    let mut node = Node::new(Value::Map(map), mark);
                    node.tag = tag;
                    self.push_value(node, anchor)
                }
                _ => Err(Error::Invalid(format!("{mark}: unbalanced YAML mapping"))),
            },
            Event::DocumentStart
            | Event::DocumentEnd
            | Event::StreamStart
            | Event::StreamEnd
            | Event::Nothing => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            let mark = match &frame {
                Frame::Seq { mark, .. } | Frame::Map { mark, .. } => mark.clone(),
            };
            return Err(Error::Invalid(format!(
                "{mark}: YAML nested deeper than {MAX_DEPTH} levels"
            )));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push_value(&mut self, node: Node, anchor: usize) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Error::Invalid(format!(
                "{}: document has more than {MAX_NODES} values",
                node.mark
            )));
        }
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending, ..
            }) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.handle(ev, mark) {
            self.fail(e);
        }
    }
}

/// Turn key/value pairs into a map: keys must be scalars and unique; `<<` merges
/// the entries of the referenced mapping(s) that are not set explicitly.
fn build_map(entries: Vec<(Node, Node)>) -> Result<IndexMap<String, Node>, Error> {
    let mut map: IndexMap<String, Node> = IndexMap::new();
    let mut merged: Vec<Node> = Vec::new();
    for (key, mut value) in entries {
        let name = match &key.value {
            Value::Scalar { text, .. } => text.clone(),
            Value::Null => "null".to_string(),
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: mapping keys must be strings, not {}",
                    key.mark,
                    key.kind()
                )))
            }
        };
        if name == "<<" && matches!(&key.value, Value::Scalar { plain: true, .. }) {
            merged.push(value);
            continue;
        }
        if map.contains_key(&name) {
            return Err(Error::Invalid(format!(
                "{}: duplicate key \"{name}\"",
                key.mark
            )));
        }
        value.key_mark = key.mark.clone();
        map.insert(name, value);
    }
    for source in merged {
        let sources: Vec<&Node> = match &source.value {
            Value::Map(_) => vec![&source],
            Value::Seq(items) => items.iter().collect(),
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: merge key << needs a mapping or a list of mappings, not {}",
                    source.mark,
                    source.kind()
                )))
            }
        };
        for s in sources {
            let Some(m) = s.as_map() else {
                return Err(Error::Invalid(format!(
                    "{}: merge key << needs a mapping, not {}",
                    s.mark,
                    s.kind()
                )));
            };
            for (k, v) in m {
                if !map.contains_key(k) {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(map)
}

/// Convert a tree to JSON (for schema validation), typing plain scalars.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Scalar { .. } => match node.typed() {
            Some(Typed::Bool(b)) => J::Bool(b),
            Some(Typed::Int(i)) => J::from(i),
            Some(Typed::Float(f)) => serde_json::Number::from_f64(f)
                .map(J::Number)
                .unwrap_or(J::String(f.to_string())),
            Some(Typed::Str(s)) => J::String(s.to_string()),
            _ => J::Null,
        },
        Value::Seq(s) => J::Array(s.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(&Arc::from("t.yml"), text).unwrap().remove(0)
    }

    #[test]
    fn marks_are_one_based() {
        let n = p("a:\n  b: 1\n");
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.mark.line, b.mark.col), (2, 6));
        assert_eq!((b.key_mark.line, b.key_mark.col), (2, 3));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p("x: &base {a: 1, b: 2}\ny:\n  <<: *base\n  b: 3\nz: *base\n");
        let y = n.get("y").unwrap();
        assert_eq!(y.get("a").unwrap().as_text(), Some("1"));
        assert_eq!(y.get("b").unwrap().as_text(), Some("3"));
        assert_eq!(n.get("z").unwrap().get("b").unwrap().as_text(), Some("2"));
        let n = p("a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc:\n  <<: [*a, *b]\n");
        let c = n.get("c").unwrap();
        assert_eq!(c.get("k").unwrap().as_text(), Some("1"));
        assert_eq!(c.get("j").unwrap().as_text(), Some("3"));
    }

    #[test]
    fn tags_and_types() {
        let n = p("a: !reset []\nb: !override {x: 1}\nc: '1'\nd: 1\ne: ~\nf: !!str 2\n");
        assert_eq!(n.get("a").unwrap().tag, Some(MergeTag::Reset));
        assert_eq!(n.get("b").unwrap().tag, Some(MergeTag::Override));
        assert_eq!(n.get("c").unwrap().typed(), Some(Typed::Str("1")));
        assert_eq!(n.get("d").unwrap().typed(), Some(Typed::Int(1)));
        assert!(n.get("e").unwrap().is_null());
        assert_eq!(n.get("f").unwrap().typed(), Some(Typed::Str("2")));
        assert_eq!(resolve_plain("8000:5000"), Typed::Str("8000:5000"));
        assert_eq!(resolve_plain("1.5"), Typed::Float(1.5));
        assert_eq!(resolve_plain("yes"), Typed::Str("yes"));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse(&Arc::from("t.yml"), "a: 1\na: 2\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.yml:2:1: duplicate key \"a\"");
        let e = parse(&Arc::from("t.yml"), "a: [1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yml:"), "{e}");
        let e = parse(&Arc::from("t.yml"), "a: !foo 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown YAML tag"), "{e}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let e = parse(&Arc::from("t.yml"), &text).unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
        let deep = "[".repeat(1000);
        assert!(parse(&Arc::from("t.yml"), &deep).is_err());
    }
}
