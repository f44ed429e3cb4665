//! Logging setup: `tracing` with human or JSON output, level from `RUST_LOG` (default
//! `info`). Per-request access lines are logged at `debug` under the `portcullis::access`
//! target (the audit trail is the durable record); errors carry the decision id.

use tracing_subscriber::EnvFilter;

/// Log output format (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// so tests and the demo can both call it.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.fmt_fields(escaped_fields()).try_init(),
        // serde_json escapes control characters itself.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Field formatting for human lines with control characters escaped. Some fields carry what
/// a client sent (an OAuth `error` on the callback, a refused token's reason): written raw, a
/// newline in one forges a log line of the attacker's choosing (CWE-117) and an escape
/// sequence drives the reader's terminal.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        // A `%value` field's Debug is its Display, so this is the text the default writes.
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        match field.name() {
            "message" => writer.write_str(&text),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ")
}

/// `text` with control characters (C0, DEL, C1) and bidirectional overrides written as
/// escapes, so a log line stays one line and reads as what it holds.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_cannot_break_a_log_line() {
        let forged = "access_denied\n2026-11-28T00:00:00Z  INFO login subject=admin\u{1b}[31m";
        let escaped = escape_controls(forged);
        assert!(
            !escaped.contains('\n') && !escaped.contains('\u{1b}'),
            "{escaped}"
        );
        assert_eq!(
            escaped,
            "access_denied\\n2026-11-28T00:00:00Z  INFO login subject=admin\\u{1b}[31m"
        );
        assert_eq!(escape_controls("a\r\tb\u{202e}c"), "a\\r\\tb\\u{202e}c");
        assert!(matches!(
            escape_controls("plain text, é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
