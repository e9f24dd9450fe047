//! `key=value` settings as the Kafka tools take them: repeated
//! `--property`, `--producer-property`, `--consumer-property` flags and
//! `.properties` files.

use std::collections::BTreeMap;
use std::path::Path;

/// Settings by key; later values win, as with Java's `Properties`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(BTreeMap<String, String>);

impl Props {
    /// Parses `key=value` flags; `flag` names the option in errors.
    pub fn from_flags(flag: &str, pairs: &[String]) -> Result<Props, String> {
        let mut props = Props::default();
        props.add_flags(flag, pairs)?;
        Ok(props)
    }

    pub fn add_flags(&mut self, flag: &str, pairs: &[String]) -> Result<(), String> {
        for pair in pairs {
            let (k, v) = pair
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| format!("invalid {flag} {pair:?}: expected key=value"))?;
            self.0.insert(k.trim().to_owned(), v.to_owned());
        }
        Ok(())
    }

    /// Reads a Java-style properties file: `key=value` or `key: value`
    /// lines, `#` and `!` comments. Line continuations and escapes are not
    /// supported.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let at = line
                .find(['=', ':'])
                .ok_or_else(|| format!("{}:{}: expected key=value", path.display(), n + 1))?;
            let (k, v) = (line[..at].trim(), line[at + 1..].trim());
            self.0.insert(k.to_owned(), v.to_owned());
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_owned(), value.to_owned());
    }

    /// A boolean setting; Kafka reads anything but `true` as false.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// A number setting, with the default when unset.
    pub fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("invalid value {v:?} for {key}: expected a number")),
        }
    }

    /// Keys not in `known`, for a warning.
    pub fn unknown<'a>(&'a self, known: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .keys()
            .map(String::as_str)
            .filter(move |k| !known.contains(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_later_values_win() {
        let p = Props::from_flags(
            "--property",
            &[
                "parse.key=true".into(),
                "key.separator=:".into(),
                "key.separator==".into(),
            ],
        )
        .expect("valid");
        assert!(p.flag("parse.key"));
        assert_eq!(p.get("key.separator"), Some("="));
        assert!(Props::from_flags("--property", &["nokey".into()]).is_err());
        assert_eq!(
            p.unknown(&["parse.key"]).collect::<Vec<_>>(),
            ["key.separator"]
        );
        assert_eq!(p.number("missing", 7u32), Ok(7));
        assert!(p.number::<u32>("key.separator", 0).is_err());
    }

    #[test]
    fn files_parse_like_java_properties() {
        let path = std::env::temp_dir().join(format!("ringtail-props-{}", std::process::id()));
        std::fs::write(&path, "# comment\n! also\nacks = all\nclient.id: cli\n\n").expect("write");
        let mut p = Props::default();
        p.add_file(&path).expect("valid");
        let _ = std::fs::remove_file(&path);
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("client.id"), Some("cli"));
    }
}
