//! Where settings come from: `moltflow.toml` in the working directory, overlaid by `MOLTFLOW_*`
//! environment variables. Each value remembers where it came from, so that an error names the
//! place to fix: the variable, or the file and its key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use super::ConfigError;
use super::settings::{closest, is_foreign, is_known};

/// Where one value was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueSource {
    Env,
    File(String),
}

/// `key → (text, where it was read)`; keys in lower case without the `MOLTFLOW_` prefix.
pub type RawSettings = BTreeMap<String, (String, ValueSource)>;

fn suggestion(key: &str, spell: impl Fn(&str) -> String) -> String {
    closest(key).map(|k| format!(" (did you mean {}?)", spell(k))).unwrap_or_default()
}

/// The keys of a TOML file. A missing file is no settings; an unknown key or a value that is not
/// a string, number, boolean or list of those refuses to start, naming the file and the key.
pub fn read_file(path: &Path) -> Result<RawSettings, ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RawSettings::new()),
        Err(e) => return Err(ConfigError { variable: name, message: format!("cannot read: {e}") }),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError { variable: name.clone(), message: e.message().to_owned() })?;
    let mut out = RawSettings::new();
    for (key, value) in table {
        let lower = key.to_lowercase();
        if !is_known(&lower) {
            let hint = suggestion(&lower, str::to_owned);
            return Err(ConfigError { variable: name, message: format!("unknown key `{key}`{hint}") });
        }
        let text = scalar_text(&value).ok_or_else(|| ConfigError {
            variable: format!("{name}: {key}"),
            message: "must be a string, a number, a boolean or a list of those".to_owned(),
        })?;
        out.insert(lower, (text, ValueSource::File(name.clone())));
    }
    Ok(out)
}

/// The `MOLTFLOW_*` variables among `vars`, and one warning for each unknown one (the test
/// suite's `MOLTFLOW_TEST_*` and CI's `MOLTFLOW_CI_*` excepted). A known variable that is not
/// UTF-8 is an error naming it.
pub fn read_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(RawSettings, Vec<String>), ConfigError> {
    let mut out = RawSettings::new();
    let mut warnings = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name.strip_prefix("MOLTFLOW_") else { continue };
        let key = key.to_lowercase();
        if is_foreign(&key) {
            continue;
        }
        if !is_known(&key) {
            let hint = suggestion(&key, |k| format!("MOLTFLOW_{}", k.to_uppercase()));
            warnings.push(format!("unknown environment variable {name} is ignored{hint}"));
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| ConfigError { variable: name.to_owned(), message: "is not valid UTF-8".to_owned() })?;
        out.insert(key, (value, ValueSource::Env));
    }
    Ok((out, warnings))
}

/// TOML values as the text an environment variable would carry (`["a", "b"]` → `a,b`).
fn scalar_text(v: &toml::Value) -> Option<String> {
    use toml::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Option<Vec<_>>>().map(|v| v.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn unknown_variables_are_named_with_a_suggestion_and_foreign_ones_are_left_alone() {
        let (values, warnings) = read_env(env(&[
            ("MOLTFLOW_BINDD", "127.0.0.1:9"),
            ("MOLTFLOW_LOG", "warn"),
            ("MOLTFLOW_TEST_DATABASE_URL", "postgres://x"),
            ("MOLTFLOW_CI_POSTGRES", "postgres://x"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(warnings, ["unknown environment variable MOLTFLOW_BINDD is ignored (did you mean MOLTFLOW_BIND?)"]);
        assert_eq!(values.keys().collect::<Vec<_>>(), ["log"]);
    }

    #[test]
    fn file_values_keep_their_origin_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("moltflow-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("moltflow.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:1\"\nrate_limit_scale = 0\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let values = read_file(&path).unwrap();
        let file = ValueSource::File(path.display().to_string());
        assert_eq!(values["bind"], ("0.0.0.0:1".to_owned(), file.clone()));
        assert_eq!(values["rate_limit_scale"].0, "0");
        assert_eq!(values["trusted_proxies"].0, "10.0.0.0/8,::1");

        std::fs::write(&path, "bindd = \"0.0.0.0:1\"\n").unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains("unknown key `bindd` (did you mean bind?)"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
