//! `BLUEGREEN_<SECTION>_<KEY>` overrides of scalar keys.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ConfigError, OVERRIDABLE, RawConfig, SECRET_VARS};

/// Apply `BLUEGREEN_<SECTION>_<KEY>` overrides; an unknown key or a bad value is an error
/// naming the variable. Returns the keys overridden (`cloud.speed` → the variable's
/// name), so a later check of such a key blames the variable, not the file.
pub(super) fn apply_env(
    raw: &mut RawConfig,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut overridden = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("BLUEGREEN_") else {
            continue;
        };
        if SECRET_VARS.contains(&name.as_str()) || name == "BLUEGREEN_SERVER" {
            continue;
        }
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        let Some((_, keys)) = OVERRIDABLE.iter().find(|(s, _)| *s == section) else {
            continue; // not a config section (e.g. BLUEGREEN_MOTO_SERVER)
        };
        let err = |message: String| ConfigError {
            origin: format!("environment variable {name}"),
            key: format!("{section}.{key}"),
            line: None,
            message,
        };
        if !keys.contains(&key.as_str()) {
            return Err(err(format!(
                "[{section}] has no overridable key {key:?} (keys: {})",
                keys.join(", ")
            )));
        }
        // The value as TOML when it parses as a scalar (42, true), else as a string.
        let typed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table() && !v.is_array());
        let plain = toml::Value::String(value.clone());
        let mut last_error = String::new();
        let mut applied = false;
        for candidate in typed.into_iter().chain([plain]) {
            match set_key(raw, &section, &key, candidate) {
                Ok(()) => {
                    applied = true;
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        if !applied {
            return Err(err(last_error));
        }
        overridden.insert(format!("{section}.{key}"), name.clone());
    }
    Ok(overridden)
}

fn patch<T: Serialize + serde::de::DeserializeOwned>(
    section: &T,
    key: &str,
    value: toml::Value,
) -> Result<T, String> {
    let mut table = toml::Table::try_from(section).map_err(|e| e.to_string())?;
    table.insert(key.to_string(), value);
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())
}

fn set_key(
    raw: &mut RawConfig,
    section: &str,
    key: &str,
    value: toml::Value,
) -> Result<(), String> {
    match section {
        "server" => raw.server = patch(&raw.server, key, value)?,
        "cloud" => raw.cloud = patch(&raw.cloud, key, value)?,
        "runner" => raw.runner = patch(&raw.runner, key, value)?,
        "log" => raw.log = patch(&raw.log, key, value)?,
        _ => return Err(format!("unknown section {section}")),
    }
    Ok(())
}
