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

/// `text` as a TOML string value, quoted and escaped, for an override a flag makes
/// (`--data` → `data.spec=...`): a path holding quotes, backslashes or `=` stays one string.
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
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
    let text = read_recipe(path)?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError(located(path, &text, &e)))?;
    if sets.is_empty() {
        // Parsing the text directly keeps line numbers in the messages.
        return toml::from_str(&text).map_err(|e| {
            ConfigError(match missing_table::<T>(&table, e.message()) {
                Some(what) => format!("{}: {what}", path.display()),
                None => located(path, &text, &e),
            })
        });
    }
    for set in sets {
        let (key, value) = parse_override(set)?;
        apply_override(&mut table, &key, value, set)?;
    }
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let with_sets = format!("{} with --set {}", path.display(), sets.join(" "));
        if let Some(missing) = missing_table::<T>(&table, e.message()) {
            return ConfigError(format!("{with_sets}: {missing}"));
        }
        // An error the file has on its own (not made by an override) is located in it.
        match toml::from_str::<T>(&text) {
            Err(in_file) if in_file.message() == e.message() && in_file.span().is_some() => {
                ConfigError(located(path, &text, &in_file))
            }
            _ => ConfigError(format!("{with_sets}: {}", one_line(e.message()))),
        }
    })
}

/// The text of a recipe, through the bounded input layer: a regular file (not a FIFO, a
/// device or a folder) of at most `MAX_RECIPE_BYTES`, in UTF-8.
fn read_recipe(path: &Path) -> Result<String, ConfigError> {
    let bytes =
        datasets::input_file::read_bounded(path, datasets::limits::MAX_RECIPE_BYTES, "a recipe")
            .map_err(|e| ConfigError(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| {
        ConfigError(format!(
            "{}: not UTF-8 text, so not a TOML file",
            path.display()
        ))
    })
}

/// `FILE:LINE:COLUMN: message` where toml located the error in `text`, else `FILE: message`.
/// A missing key is reported at its table's header, which the message then names.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let mut message = one_line(e.message());
    if message.is_empty() {
        // toml says nothing for some incomplete values, e.g. a file cut inside an array.
        message = if e.span().is_some_and(|s| s.start >= text.trim_end().len()) {
            "the file ends in the middle of a value".into()
        } else {
            "invalid TOML".into()
        };
    }
    match e.span().filter(|s| s.start <= text.len()) {
        Some(span) => {
            let before = &text.as_bytes()[..span.start];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            let header = text[line_start..].lines().next().unwrap_or_default().trim();
            if message.starts_with("missing field") && header.starts_with('[') {
                message = format!("{message} in {header}");
            }
            format!("{}:{line}:{column}: {message}", path.display())
        }
        None => format!("{}: {message}", path.display()),
    }
}

/// toml's messages may span lines ("invalid string\nexpected ..."); errors are one line.
fn one_line(message: &str) -> String {
    message
        .trim_end()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// For "missing field `KEY`" at the top level: whether KEY is a whole missing table, and
/// then the first key it needs, found by deserialising again with KEY as an empty table
/// ("missing table [model] (it needs at least `arch`)").
fn missing_table<T: DeserializeOwned>(table: &toml::Table, message: &str) -> Option<String> {
    let key = message
        .strip_prefix("missing field `")?
        .split_once('`')?
        .0
        .to_string();
    if table.contains_key(&key) {
        return None;
    }
    let mut probe = table.clone();
    probe.insert(key.clone(), toml::Value::Table(toml::Table::new()));
    let err = T::deserialize(toml::Value::Table(probe)).err()?;
    let inner = err
        .message()
        .strip_prefix("missing field `")?
        .split_once('`')?
        .0
        .to_string();
    (inner != key).then(|| format!("missing table [{key}] (it needs at least `{key}.{inner}`)"))
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

    /// A path a flag passes through an override arrives as the user typed it, quotes and
    /// backslashes included.
    #[test]
    fn a_flag_value_survives_as_one_string() {
        let f = write("arch = \"resnet50\"\n[optim]\nlr = 0.1\n");
        let odd = r#"coco:my "data"\a=b.json"#;
        let sets = [format!("arch={}", toml_string(odd))];
        let c: Config = load(f.path(), &sets).unwrap();
        assert_eq!(c.arch, odd);
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
