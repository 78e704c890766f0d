//! Merge stage: fold several compose files (and `extends` bases) into one tree,
//! by the compose-spec rules: mappings merge key by key, most lists append,
//! `command`/`entrypoint`/`healthcheck.test` are replaced, list-or-dict fields merge by
//! key, `ports` and the string lists append without duplicates, `volumes` merge by
//! target and `secrets`/`configs` by source. `!reset` removes the earlier value and
//! `!override` replaces it whole.

use indexmap::IndexMap;

use crate::yaml::{MergeTag, Node, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    /// The later value wins.
    Replace,
    /// Mappings merge recursively; anything else is replaced.
    Deep,
    /// `KEY=VAL` lists and maps both become a map, then merge by key.
    KeyValue,
    /// A list of names or a map: both become a map, then merge by key.
    NameMap,
    /// A string or list: becomes a list; later items are appended unless already present.
    AppendUnique,
    /// Lists merged by an identifying field of each item.
    ByVolumeTarget,
    BySource,
    /// `build: ./dir` is `build: {context: ./dir}`.
    Build,
}

fn rule(path: &[&str]) -> Rule {
    use Rule::*;
    match path {
        ["services", _, "command" | "entrypoint"] => Replace,
        ["services", _, "healthcheck", "test"] => Replace,
        ["services", _, "environment" | "labels" | "sysctls" | "annotations"]
        | ["services", _, "build", "args" | "labels"]
        | ["services", _, "deploy", "labels"]
        | ["networks" | "volumes" | "secrets" | "configs", _, "labels"] => KeyValue,
        ["services", _, "depends_on" | "networks"] => NameMap,
        ["services", _, "ports"] => AppendUnique,
        ["services", _, "dns"
        | "dns_search"
        | "dns_opt"
        | "tmpfs"
        | "env_file"
        | "expose"
        | "cap_add"
        | "cap_drop"
        | "security_opt"
        | "devices"
        | "extra_hosts"
        | "external_links"
        | "links"
        | "volumes_from"
        | "group_add"
        | "profiles"
        | "device_cgroup_rules"
        | "label_file"] => AppendUnique,
        ["services", _, "volumes"] => ByVolumeTarget,
        ["services", _, "secrets" | "configs"] => BySource,
        ["services", _, "build"] => Build,
        ["services", _, "extends"] => Replace,
        _ => Deep,
    }
}

/// Merge `over` onto `base` (both whole documents).
pub fn merge_documents(base: Node, over: Node) -> Node {
    let mut path = Vec::new();
    merge_at(base, over, &mut path)
}

fn merge_at(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    match over.tag {
        Some(MergeTag::Override) => {
            let mut n = over;
            n.tag = None;
            return n;
        }
        Some(MergeTag::Reset) => return over,
        None => {}
    }
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match rule(&p) {
        Rule::Replace => over,
        Rule::Deep => deep(base, over, path),
        Rule::KeyValue => deep(key_value_map(base), key_value_map(over), path),
        Rule::NameMap => deep(name_map(base), name_map(over), path),
        Rule::Build => deep(build_map(base), build_map(over), path),
        Rule::AppendUnique => {
            let (mark, key_mark) = (over.mark.clone(), over.key_mark.clone());
            let mut items = into_list(base);
            for item in into_list(over) {
                if !items.iter().any(|i| same(i, &item)) {
                    items.push(item);
                }
            }
            Node {
                value: Value::Seq(items),
                mark,
                key_mark,
                tag: None,
            }
        }
        Rule::ByVolumeTarget => by_key(base, over, volume_target),
        Rule::BySource => by_key(base, over, source_of),
    }
}

fn deep(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                let merged = match b.shift_remove(&k) {
                    Some(old) => {
                        path.push(k.clone());
                        let m = merge_at(old, v, path);
                        path.pop();
                        m
                    }
                    None => v,
                };
                b.insert(k, merged);
            }
            Node {
                value: Value::Map(b),
                mark: over.mark,
                key_mark: over.key_mark,
                tag: over.tag,
            }
        }
        (_, value) => Node {
            value,
            mark: over.mark,
            key_mark: over.key_mark,
            tag: over.tag,
        },
    }
}

fn same(a: &Node, b: &Node) -> bool {
    crate::yaml::to_json(a) == crate::yaml::to_json(b)
}

/// A string becomes a one-item list; null an empty one.
pub fn into_list(n: Node) -> Vec<Node> {
    match n.value {
        Value::Seq(items) => items,
        Value::Null => Vec::new(),
        _ => vec![n],
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}`; maps are kept.
pub fn key_value_map(n: Node) -> Node {
    let Value::Seq(items) = &n.value else {
        return n;
    };
    let mut map = IndexMap::new();
    for item in items {
        let Some(text) = item.as_text() else { return n };
        let (k, v) = match text.split_once('=') {
            Some((k, v)) => (k.to_string(), Node::string(v, item.mark.clone())),
            None => (text.to_string(), Node::new(Value::Null, item.mark.clone())),
        };
        map.insert(k, v);
    }
    Node {
        value: Value::Map(map),
        ..n
    }
}

/// `[a, b]` → `{a: null, b: null}` (service networks, depends_on); maps are kept.
pub fn name_map(n: Node) -> Node {
    let Value::Seq(items) = &n.value else {
        return n;
    };
    let mut map = IndexMap::new();
    for item in items {
        let Some(text) = item.as_text() else { return n };
        let mut v = Node::new(Value::Null, item.mark.clone());
        v.key_mark = item.mark.clone();
        map.insert(text.to_string(), v);
    }
    Node {
        value: Value::Map(map),
        ..n
    }
}

fn build_map(n: Node) -> Node {
    if n.as_text().is_some() {
        let mut map = IndexMap::new();
        map.insert("context".to_string(), n.clone());
        return Node {
            value: Value::Map(map),
            ..n
        };
    }
    n
}

fn by_key(base: Node, over: Node, key: fn(&Node) -> Option<String>) -> Node {
    let mark = over.mark.clone();
    let key_mark = over.key_mark.clone();
    let mut items = into_list(base);
    for item in into_list(over) {
        let k = key(&item);
        match items.iter().position(|i| k.is_some() && key(i) == k) {
            Some(pos) => items[pos] = item,
            None => items.push(item),
        }
    }
    Node {
        value: Value::Seq(items),
        mark,
        key_mark,
        tag: None,
    }
}

/// The container path of a volume entry, short or long syntax.
pub fn volume_target(n: &Node) -> Option<String> {
    if let Some(t) = n.get("target") {
        return t.as_text().map(str::to_string);
    }
    let text = n.as_text()?;
    let parts: Vec<&str> = text.split(':').collect();
    Some(if parts.len() == 1 { parts[0] } else { parts[1] }.to_string())
}

fn source_of(n: &Node) -> Option<String> {
    match n.get("source") {
        Some(s) => s.as_text().map(str::to_string),
        None => n.as_text().map(str::to_string),
    }
}

/// Drop every key whose value is tagged `!reset` (after all merges, nothing is left to reset).
pub fn strip_resets(n: &mut Node) {
    n.tag = None;
    match &mut n.value {
        Value::Map(m) => {
            m.retain(|_, v| v.tag != Some(MergeTag::Reset));
            for v in m.values_mut() {
                strip_resets(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Some(MergeTag::Reset));
            for v in items.iter_mut() {
                strip_resets(v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn doc(t: &str) -> Node {
        crate::yaml::parse(&Arc::from("t.yml"), t)
            .unwrap()
            .remove(0)
    }

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let mut n = merge_documents(doc(a), doc(b));
        strip_resets(&mut n);
        crate::yaml::to_json(&n)
    }

    /// (base, override, expected merged JSON of services.s)
    const CASES: &[(&str, &str, &str, &str)] = &[
        (
            "scalars replaced",
            "image: a",
            "image: b",
            r#"{"image":"b"}"#,
        ),
        (
            "new keys added",
            "image: a",
            "user: x",
            r#"{"image":"a","user":"x"}"#,
        ),
        (
            "command replaced",
            "command: [a, b]",
            "command: [c]",
            r#"{"command":["c"]}"#,
        ),
        (
            "entrypoint replaced",
            "entrypoint: a b",
            "entrypoint: [c]",
            r#"{"entrypoint":["c"]}"#,
        ),
        (
            "healthcheck.test replaced",
            "healthcheck: {test: [CMD, a], retries: 2}",
            "healthcheck: {test: [CMD, b]}",
            r#"{"healthcheck":{"test":["CMD","b"],"retries":2}}"#,
        ),
        (
            "environment list+map",
            "environment: [A=1, B=2]",
            "environment: {B: 3, C: 4}",
            r#"{"environment":{"A":"1","B":3,"C":4}}"#,
        ),
        (
            "labels map+list",
            "labels: {a: x}",
            "labels: [b=y]",
            r#"{"labels":{"a":"x","b":"y"}}"#,
        ),
        (
            "ports appended, dups dropped",
            "ports: ['80:80', '443:443']",
            "ports: ['80:80', '8080:80']",
            r#"{"ports":["80:80","443:443","8080:80"]}"#,
        ),
        (
            "volumes merged by target",
            "volumes: ['./a:/data', 'v:/other']",
            "volumes: ['./b:/data']",
            r#"{"volumes":["./b:/data","v:/other"]}"#,
        ),
        (
            "volumes long by target",
            "volumes: [{type: bind, source: ./a, target: /d}]",
            "volumes: ['./b:/d:ro']",
            r#"{"volumes":["./b:/d:ro"]}"#,
        ),
        (
            "dns string+list",
            "dns: 8.8.8.8",
            "dns: [1.1.1.1, 8.8.8.8]",
            r#"{"dns":["8.8.8.8","1.1.1.1"]}"#,
        ),
        (
            "depends_on list+map",
            "depends_on: [db]",
            "depends_on: {cache: {condition: service_healthy}}",
            r#"{"depends_on":{"db":null,"cache":{"condition":"service_healthy"}}}"#,
        ),
        (
            "networks list+map",
            "networks: [front]",
            "networks: {front: {aliases: [x]}}",
            r#"{"networks":{"front":{"aliases":["x"]}}}"#,
        ),
        (
            "build string+map",
            "build: ./app",
            "build: {dockerfile: D}",
            r#"{"build":{"context":"./app","dockerfile":"D"}}"#,
        ),
        (
            "secrets by source",
            "secrets: [a, {source: b, target: x}]",
            "secrets: [{source: b, target: y}]",
            r#"{"secrets":["a",{"source":"b","target":"y"}]}"#,
        ),
        (
            "!reset removes",
            "ports: ['80:80']\nimage: a",
            "ports: !reset []",
            r#"{"image":"a"}"#,
        ),
        (
            "!override replaces",
            "environment: {A: 1}",
            "environment: !override {B: 2}",
            r#"{"environment":{"B":2}}"#,
        ),
        (
            "deep maps merge",
            "deploy: {resources: {limits: {cpus: '1'}}}",
            "deploy: {resources: {limits: {memory: 1g}}}",
            r#"{"deploy":{"resources":{"limits":{"cpus":"1","memory":"1g"}}}}"#,
        ),
        (
            "cap_add unique",
            "cap_add: [A]",
            "cap_add: [A, B]",
            r#"{"cap_add":["A","B"]}"#,
        ),
        (
            "ulimits replaced per key",
            "ulimits: {nofile: {soft: 1, hard: 2}}",
            "ulimits: {nofile: 5}",
            r#"{"ulimits":{"nofile":5}}"#,
        ),
    ];

    #[test]
    fn merge_rules_table() {
        for (name, a, b, want) in CASES {
            let a = format!("services:\n  s:\n    {}\n", a.replace('\n', "\n    "));
            let b = format!("services:\n  s:\n    {}\n", b.replace('\n', "\n    "));
            let got = merged(&a, &b);
            let want: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(got["services"]["s"], want, "{name}");
        }
    }
}
