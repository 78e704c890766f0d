//! Names and labels, as docker compose spells them.

use std::collections::BTreeMap;

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_IMAGE: &str = "com.docker.compose.image";
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const LABEL_VERSION: &str = "com.docker.compose.version";
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";

/// `<project>-<service>-<n>`.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// `run`'s one-off containers: `<project>-<service>-run-<12 hex>`.
pub fn oneoff_name(project: &str, service: &str, id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    format!("{project}-{service}-run-{short}")
}

/// `<project>_<name>` (networks and volumes declared without `name:`).
pub fn scoped(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

/// The labels every service container carries.
#[allow(clippy::too_many_arguments)]
pub fn container_labels(
    project: &str,
    service: &str,
    number: u32,
    hash: &str,
    image_id: &str,
    oneoff: bool,
    working_dir: &str,
    config_files: &str,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(LABEL_PROJECT.into(), project.into());
    l.insert(LABEL_SERVICE.into(), service.into());
    l.insert(LABEL_NUMBER.into(), number.to_string());
    l.insert(LABEL_HASH.into(), hash.into());
    l.insert(LABEL_IMAGE.into(), image_id.into());
    l.insert(
        LABEL_ONEOFF.into(),
        if oneoff { "True" } else { "False" }.into(),
    );
    l.insert(LABEL_WORKING_DIR.into(), working_dir.into());
    l.insert(LABEL_CONFIG_FILES.into(), config_files.into());
    l.insert(LABEL_VERSION.into(), env!("CARGO_PKG_VERSION").into());
    l
}

/// The labels of a network or volume compose creates: the user's, then
/// the project and the compose key (`kind_label` is LABEL_NETWORK or
/// LABEL_VOLUME).
pub fn resource_labels<'a>(
    user: impl IntoIterator<Item = (&'a String, &'a String)>,
    project: &str,
    kind_label: &str,
    key: &str,
) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = user
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    l.insert(LABEL_PROJECT.into(), project.into());
    l.insert(kind_label.into(), key.into());
    l
}

/// Whether a project name is valid (compose: lowercase letters, digits, `-`, `_`, starting with a letter or digit).
pub fn valid_project_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_lowercase() || f.is_ascii_digit())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_labels_keep_the_users_but_not_over_ours() {
        let user: BTreeMap<String, String> = [("team", "a"), (LABEL_PROJECT, "spoof")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let l = resource_labels(&user, "hit", LABEL_VOLUME, "data");
        assert_eq!(l["team"], "a");
        assert_eq!(l[LABEL_PROJECT], "hit");
        assert_eq!(l[LABEL_VOLUME], "data");
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn names_like_compose() {
        assert_eq!(container_name("hit", "web", 1), "hit-web-1");
        assert_eq!(scoped("hit", "default"), "hit_default");
        assert_eq!(
            oneoff_name("hit", "web", "0123456789abcdef"),
            "hit-web-run-0123456789ab"
        );
        let l = container_labels("p", "s", 2, "h", "sha256:x", false, "/d", "/d/c.yml");
        assert_eq!(l[LABEL_NUMBER], "2");
        assert_eq!(l[LABEL_ONEOFF], "False");
        assert!(valid_project_name("hit_counter-2"));
        assert!(!valid_project_name("Hit"));
        assert!(!valid_project_name("-x"));
    }
}
