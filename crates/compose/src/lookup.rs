//! Which files, which directory, which variables and which project name —
//! docker compose's rules for `-f`, `COMPOSE_FILE`, `--project-directory`,
//! `--env-file`/`.env` and `-p`/`COMPOSE_PROJECT_NAME`/`name:`.

use std::path::{Path, PathBuf};

use crate::interpolate::Env;
use crate::Error;

/// Names looked for, in order of preference, in the working directory and its parents.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// A compose file to read: a path, or `-` for stdin.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Path(PathBuf),
    Stdin,
}

/// The files to load, in order, plus any warnings.
pub fn find_files(
    files: &[PathBuf],
    env: &Env,
    cwd: &Path,
    project_dir: Option<&Path>,
) -> Result<(Vec<Source>, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let to_source = |p: &Path| {
        if p.as_os_str() == "-" {
            Source::Stdin
        } else if p.is_absolute() {
            Source::Path(p.to_path_buf())
        } else {
            Source::Path(cwd.join(p))
        }
    };
    if !files.is_empty() {
        return Ok((files.iter().map(|p| to_source(p)).collect(), warnings));
    }
    if let Some(list) = env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .map(String::as_str)
            .unwrap_or(":");
        let sep = if sep.is_empty() { ":" } else { sep };
        return Ok((
            list.split(sep)
                .filter(|s| !s.is_empty())
                .map(|s| to_source(Path::new(s)))
                .collect(),
            warnings,
        ));
    }
    let start = project_dir
        .map(|d| {
            if d.is_absolute() {
                d.to_path_buf()
            } else {
                cwd.join(d)
            }
        })
        .unwrap_or_else(|| cwd.to_path_buf());
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        let found: Vec<PathBuf> = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(first) = found.first() {
            if found.len() > 1 {
                let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
                warnings.push(format!(
                    "Found multiple config files with supported names: {}; using {}",
                    names.join(", "),
                    first.display()
                ));
            }
            let mut out = vec![Source::Path(first.clone())];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                out.push(Source::Path(o));
            }
            return Ok((out, warnings));
        }
        dir = d.parent();
    }
    Err(Error::Invalid(format!(
        "no configuration file provided: not found (looked for {} in {} and its parents); use -f FILE",
        DEFAULT_FILES.join(", "),
        start.display()
    )))
}

/// Variables for interpolation: the env files (or `<project dir>/.env`), overridden by
/// the process environment.
pub fn environment(
    process: &Env,
    env_files: &[PathBuf],
    project_dir: &Path,
    cwd: &Path,
) -> Result<Env, Error> {
    let mut env = Env::new();
    let files: Vec<(PathBuf, bool)> = if env_files.is_empty() {
        vec![(project_dir.join(".env"), false)]
    } else {
        env_files
            .iter()
            .map(|f| {
                (
                    if f.is_absolute() {
                        f.clone()
                    } else {
                        cwd.join(f)
                    },
                    true,
                )
            })
            .collect()
    };
    for (path, required) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // The default .env is optional (and may even be a directory).
            Err(_) if !required && !path.is_file() => continue,
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot read env file {}: {e}",
                    path.display()
                )))
            }
        };
        let mut scope = process.clone();
        scope.extend(env.clone());
        let parsed = crate::dotenv::parse(&text, &scope)
            .map_err(|e| Error::Invalid(format!("{}:{e}", path.display())))?;
        for (k, v) in parsed {
            if let Some(v) = v {
                env.insert(k, v);
            }
        }
    }
    for (k, v) in process {
        env.insert(k.clone(), v.clone());
    }
    Ok(env)
}

/// Lowercase, keep `[a-z0-9_-]`, and drop leading `_`/`-` (docker's normalization).
pub fn normalize_name(raw: &str) -> String {
    let s: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_string()
}

pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// `-p` > `COMPOSE_PROJECT_NAME` > `name:` > the project directory's name.
pub fn project_name(
    flag: Option<&str>,
    env: &Env,
    top_level: Option<&str>,
    dir: &Path,
) -> Result<String, Error> {
    let explicit = [
        (flag, "-p"),
        (
            env.get("COMPOSE_PROJECT_NAME")
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
            "COMPOSE_PROJECT_NAME",
        ),
        (top_level.filter(|s| !s.is_empty()), "the top-level name:"),
    ];
    for (value, from) in explicit {
        if let Some(v) = value {
            if !is_valid_name(v) {
                return Err(Error::Invalid(format!(
                    "invalid project name \"{v}\" (from {from}): must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
                )));
            }
            return Ok(v.to_string());
        }
    }
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = normalize_name(&base);
    if name.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot derive a project name from the directory \"{}\"; use -p NAME or a top-level name:",
            dir.display()
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::type_complexity)]
    fn project_naming_table() {
        let mut env = Env::new();
        let dir = Path::new("/tmp/My_App.v2");
        // (flag, env, name:, expected)
        let cases: &[(Option<&str>, Option<&str>, Option<&str>, Result<&str, &str>)] = &[
            (None, None, None, Ok("my_appv2")),
            (Some("flag"), Some("envname"), Some("top"), Ok("flag")),
            (None, Some("envname"), Some("top"), Ok("envname")),
            (None, None, Some("top"), Ok("top")),
            (
                Some("Bad Name"),
                None,
                None,
                Err("invalid project name \"Bad Name\" (from -p)"),
            ),
            (None, Some("-x"), None, Err("(from COMPOSE_PROJECT_NAME)")),
            (None, None, Some("UPPER"), Err("(from the top-level name:)")),
        ];
        for (flag, e, top, want) in cases {
            env.clear();
            if let Some(e) = e {
                env.insert("COMPOSE_PROJECT_NAME".into(), e.to_string());
            }
            match (want, project_name(*flag, &env, *top, dir)) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w),
                (Err(w), Err(g)) => assert!(g.to_string().contains(w), "{g}"),
                (w, g) => panic!("want {w:?} got {g:?}"),
            }
        }
        assert_eq!(normalize_name("__Hello-World!"), "hello-world");
        assert!(project_name(None, &Env::new(), None, Path::new("/tmp/___")).is_err());
    }
}
