//! Environment overrides: `PORTCULLIS__SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`
//! before the file is deserialized, so overridden values are validated exactly like written
//! ones. `__` separates path segments (lowercased); a numeric segment indexes an array
//! (`PORTCULLIS__ROUTES__0__UPSTREAM`). The value is read as TOML when it parses as a TOML value
//! (`["a","b"]`, `true`, `42`, `"quoted"`), otherwise as a plain string. Only names that start
//! with `PORTCULLIS__` count: `PORTCULLIS_CONFIG` is the CLI's and is ignored here. This module
//! reads the pairs it is given, never the process environment itself.

use toml::{Table, Value};

use super::ConfigError;

/// The prefix that marks an override.
const PREFIX: &str = "PORTCULLIS__";

/// Applies every override in name order (so results do not depend on the environment's order)
/// and returns one error per override that cannot be applied.
pub(crate) fn apply_overrides(
    root: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<ConfigError> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .collect();
    overrides.sort();
    let mut errors = Vec::new();
    for (name, raw) in overrides {
        if let Err(message) = apply_one(root, &name, &raw) {
            errors.push(ConfigError {
                path: name,
                message,
            });
        }
    }
    errors
}

/// The value an override sets: TOML if it parses as a TOML value, else the raw string.
fn override_value(raw: &str) -> Value {
    let document = format!("value = {raw}");
    match document.parse::<Table>() {
        Ok(mut table) => table
            .remove("value")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn apply_one(root: &mut Table, name: &str, raw: &str) -> Result<(), String> {
    let segments: Vec<String> = name[PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if segments.iter().any(String::is_empty) {
        return Err("empty key segment; write PORTCULLIS__SECTION__KEY".into());
    }
    let Some((last, parents)) = segments.split_last() else {
        return Err("empty key segment; write PORTCULLIS__SECTION__KEY".into());
    };
    let mut table = root;
    // `here` names the path walked so far, for error messages.
    let mut here = String::new();
    let mut rest = parents.iter().peekable();
    while let Some(segment) = rest.next() {
        let next = rest.peek().copied().unwrap_or(last);
        let absent = !table.contains_key(segment);
        if !here.is_empty() {
            here.push('.');
        }
        here.push_str(segment);
        if absent && next.parse::<usize>().is_ok() {
            return Err(format!(
                "{here} has no entries; index {next} is past the end"
            ));
        }
        let mut slot = table
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        // An array segment is followed by its index; consume it here.
        if let Value::Array(items) = slot {
            let index: usize = next.parse().map_err(|_| {
                format!("{here} is an array; `{next}` is not an index (use 0, 1, ...)")
            })?;
            let len = items.len();
            let Some(item) = items.get_mut(index) else {
                return Err(format!(
                    "index {index} is past the end of {here} ({len} entries)"
                ));
            };
            here.push_str(&format!("[{index}]"));
            if rest.next().is_none() {
                *item = override_value(raw);
                return Ok(());
            }
            slot = item;
        }
        let Value::Table(inner) = slot else {
            let next = rest.peek().copied().unwrap_or(last);
            return Err(format!(
                "{here} is a single value, not a table; cannot set `{next}` inside it"
            ));
        };
        table = inner;
    }
    table.insert(last.clone(), override_value(raw));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, env: &[(&str, &str)]) -> (Table, Vec<ConfigError>) {
        let mut table: Table = text.parse().unwrap();
        let errors = apply_overrides(
            &mut table,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        (table, errors)
    }

    #[test]
    fn sets_a_table_key_creating_the_table() {
        let (table, errors) = apply(
            "version = 1",
            &[("PORTCULLIS__SERVER__LISTEN", "0.0.0.0:80")],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(table["server"]["listen"].as_str(), Some("0.0.0.0:80"));
    }

    #[test]
    fn replaces_nested_keys_and_lowercases_names() {
        let (table, errors) = apply(
            "[server.tls]\ncert = \"file:a\"\nkey = \"file:b\"",
            &[("PORTCULLIS__Server__TLS__Key", "env:TLS_KEY")],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(table["server"]["tls"]["key"].as_str(), Some("env:TLS_KEY"));
        assert_eq!(table["server"]["tls"]["cert"].as_str(), Some("file:a"));
    }

    #[test]
    fn indexes_arrays_of_tables() {
        let (table, errors) = apply(
            "[[routes]]\nid = \"a\"\nupstream = \"http://x\"\n[[routes]]\nid = \"b\"\nupstream = \"http://y\"",
            &[(
                "PORTCULLIS__ROUTES__1__UPSTREAM",
                r#"["http://z:1", "http://z:2"]"#,
            )],
        );
        assert!(errors.is_empty(), "{errors:?}");
        let upstream = table["routes"][1]["upstream"].as_array().unwrap();
        assert_eq!(upstream.len(), 2);
        assert_eq!(upstream[1].as_str(), Some("http://z:2"));
        assert_eq!(table["routes"][0]["upstream"].as_str(), Some("http://x"));
    }

    #[test]
    fn reads_toml_typed_values_and_falls_back_to_strings() {
        let (table, errors) = apply(
            "",
            &[
                ("PORTCULLIS__A__FLAG", "true"),
                ("PORTCULLIS__A__COUNT", "42"),
                ("PORTCULLIS__A__QUOTED", "\"42\""),
                ("PORTCULLIS__A__PLAIN", "1h30m"),
                ("PORTCULLIS__A__ADDR", "127.0.0.1:9"),
            ],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(table["a"]["flag"].as_bool(), Some(true));
        assert_eq!(table["a"]["count"].as_integer(), Some(42));
        assert_eq!(table["a"]["quoted"].as_str(), Some("42"));
        assert_eq!(table["a"]["plain"].as_str(), Some("1h30m"));
        assert_eq!(table["a"]["addr"].as_str(), Some("127.0.0.1:9"));
    }

    #[test]
    fn sets_a_top_level_key() {
        let (table, errors) = apply("version = 1", &[("PORTCULLIS__VERSION", "2")]);
        assert!(errors.is_empty());
        assert_eq!(table["version"].as_integer(), Some(2));
    }

    #[test]
    fn index_past_the_end_names_the_variable() {
        let (_, errors) = apply(
            "[[routes]]\nid = \"a\"",
            &[("PORTCULLIS__ROUTES__3__UPSTREAM", "http://x")],
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "PORTCULLIS__ROUTES__3__UPSTREAM");
        assert!(
            errors[0]
                .message
                .contains("index 3 is past the end of routes (1 entries)")
        );
    }

    #[test]
    fn refuses_non_index_on_arrays_and_descending_into_values() {
        let (_, errors) = apply(
            "[[routes]]\nid = \"a\"\n[server]\nlisten = \"x\"",
            &[
                ("PORTCULLIS__ROUTES__FIRST__ID", "b"),
                ("PORTCULLIS__SERVER__LISTEN__PORT", "80"),
                ("PORTCULLIS__SERVER____LISTEN", "80"),
            ],
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(
            |e| e.path == "PORTCULLIS__ROUTES__FIRST__ID" && e.message.contains("not an index")
        ));
        assert!(
            errors
                .iter()
                .any(|e| e.path == "PORTCULLIS__SERVER__LISTEN__PORT"
                    && e.message.contains("server.listen is a single value"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.path == "PORTCULLIS__SERVER____LISTEN")
        );
    }

    #[test]
    fn indexing_a_missing_array_is_past_the_end() {
        let (_, errors) = apply("version = 1", &[("PORTCULLIS__ROUTES__0__ID", "a")]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("routes has no entries"),
            "{errors:?}"
        );
    }

    #[test]
    fn replaces_a_whole_array_entry_or_a_plain_array_element() {
        let (table, errors) = apply(
            "[[routes]]\nid = \"a\"\nupstream = [\"http://x\", \"http://y\"]",
            &[
                ("PORTCULLIS__ROUTES__0__UPSTREAM__1", "http://z"),
                (
                    "PORTCULLIS__ROUTES__0__POLICY__ALLOW",
                    "[{ public = true }]",
                ),
            ],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(table["routes"][0]["upstream"][1].as_str(), Some("http://z"));
        assert_eq!(
            table["routes"][0]["policy"]["allow"][0]["public"].as_bool(),
            Some(true)
        );
    }

    #[test]
    fn ignores_names_without_the_double_underscore_prefix() {
        let (table, errors) = apply(
            "version = 1",
            &[("PORTCULLIS_CONFIG", "/etc/x.toml"), ("HOME", "/root")],
        );
        assert!(errors.is_empty());
        assert_eq!(table.len(), 1);
    }
}
