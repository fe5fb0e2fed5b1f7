//! TOML configs: read a file, apply `--set key=value` overrides, reject unknown keys with
//! their names, and compare two resolved configs (for `--resume`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses `key.path=value`; the value is TOML (`0.1`, `true`, `"cosine"`, `[30, 60]`), or a
/// bare string when it does not parse as TOML (`arch=resnet50d`).
fn parse_override(set: &str) -> Result<(Vec<String>, toml::Value), ConfigError> {
    let (key, value) = set.split_once('=').ok_or_else(|| {
        ConfigError(format!(
            "--set {set}: expected key=value, e.g. optim.lr=0.2"
        ))
    })?;
    let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError(format!("--set {set}: empty key")));
    }
    let value = value.trim();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((path, parsed))
}

fn apply_override(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    set: &str,
) -> Result<(), ConfigError> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| {
            ConfigError(format!(
                "--set {set}: {} is a value, not a section",
                path[..=i].join(".")
            ))
        })?;
    }
    node.insert(last.clone(), value);
    Ok(())
}

/// Reads `path`, applies the overrides in order and deserialises; unknown or mistyped keys are
/// errors naming the file (and the overrides, when there are any).
pub fn load<T: DeserializeOwned>(path: &Path, sets: &[String]) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    if sets.is_empty() {
        // Parsing the text directly keeps line numbers in the messages.
        return toml::from_str(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())));
    }
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?;
    for set in sets {
        let (key, value) = parse_override(set)?;
        apply_override(&mut table, &key, value, set)?;
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| {
        ConfigError(format!(
            "{} with --set {}: {}",
            path.display(),
            sets.join(" "),
            e.message()
        ))
    })
}

/// The config as TOML text (what a run folder's config.toml holds).
pub fn to_toml<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).expect("configs serialise to TOML")
}

/// Dotted keys whose values differ between two configs (for resume checks).
pub fn differences<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(ma), serde_json::Value::Object(mb)) => {
                let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &key,
                        ma.get(k).unwrap_or(&null),
                        mb.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{prefix}: {a} vs {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(a).unwrap(),
        &serde_json::to_value(b).unwrap(),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Optim {
        lr: f64,
        #[serde(default)]
        nesterov: bool,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Config {
        arch: String,
        optim: Optim,
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn overrides_replace_and_add_values() {
        let f = write("arch = \"resnet50\"\n[optim]\nlr = 0.1\n");
        let sets = [
            "optim.lr=0.4".to_string(),
            "optim.nesterov=true".into(),
            "arch=resnet50d".into(),
        ];
        let c: Config = load(f.path(), &sets).unwrap();
        assert_eq!(
            c,
            Config {
                arch: "resnet50d".into(),
                optim: Optim {
                    lr: 0.4,
                    nesterov: true
                }
            }
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = write("arch = \"resnet50\"\n[optim]\nlr = 0.1\nlrr = 0.2\n");
        let err = load::<Config>(f.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `lrr`"), "{err}");
        assert!(err.starts_with(&f.path().display().to_string()), "{err}");

        let f = write("arch = \"resnet50\"\n[optim]\nlr = 0.1\n");
        let err = load::<Config>(f.path(), &["optim.momentun=0.9".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `momentun`"), "{err}");
        let err = load::<Config>(f.path(), &["optim.lr=fast".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn differences_name_the_keys() {
        let a = Config {
            arch: "resnet50".into(),
            optim: Optim {
                lr: 0.1,
                nesterov: false,
            },
        };
        let b = Config {
            arch: "resnet50".into(),
            optim: Optim {
                lr: 0.2,
                nesterov: false,
            },
        };
        assert_eq!(
            differences(&a, &b),
            vec!["optim.lr: 0.1 vs 0.2".to_string()]
        );
        assert!(differences(&a, &a).is_empty());
    }
}
