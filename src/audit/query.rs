//! `audit query` output and input: `--since`/`--until` values (a duration ago like `15m`, or
//! an RFC 3339 time) into stored time text, and events out as an aligned table, JSON Lines
//! (one object per event keyed by column name) or CSV (every column, RFC 4180 quoting).
//! Searching itself is the store's.

use std::io::{self, Write};

use jiff::{SignedDuration, Timestamp};

use super::event::{COLUMNS, StoredEvent, format_ts};
use super::store::{AuditFilter, AuditStore, Cursor, StoreError};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON Lines, keyed by column name.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `15m` (that long before `now`) or `2026-11-05T10:00:00Z` -> stored time text.
pub fn parse_time(text: &str, now: Timestamp) -> Result<String, String> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(format_ts(ts));
    }
    let duration = crate::config::parse_duration(text)
        .map_err(|e| format!("`{text}`: not an RFC 3339 time or a duration ({e})"))?;
    let ago = SignedDuration::try_from(duration).map_err(|e| e.to_string())?;
    let ts = now
        .checked_sub(ago)
        .map_err(|_| format!("`{text}`: too far back"))?;
    Ok(format_ts(ts))
}

/// Up to `limit` events matching `filter`, newest first, fetched page by page.
pub async fn collect<S: AuditStore>(
    store: &S,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    while out.len() < limit {
        let want = u32::try_from((limit - out.len()).min(1000)).unwrap_or(1000);
        let page = store.query(filter, cursor.as_ref(), want).await?;
        out.extend(page.events);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// Writes `events` in `format`.
pub fn render(events: &[StoredEvent], format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::Json => {
            for event in events {
                serde_json::to_writer(&mut *out, &event.to_json())?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", COLUMNS.join(","))?;
            for event in events {
                writeln!(out, "{}", csv_row(event))?;
            }
        }
        Format::Table => table(events, out)?,
    }
    Ok(())
}

const TABLE: [&str; 10] = [
    "ts",
    "kind",
    "decision",
    "status",
    "route_id",
    "method",
    "path",
    "subject",
    "rule",
    "decision_id",
];

fn table(events: &[StoredEvent], out: &mut impl Write) -> io::Result<()> {
    let index: Vec<usize> = TABLE
        .iter()
        .filter_map(|name| COLUMNS.iter().position(|c| c == name))
        .collect();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let values = e.column_values();
            index
                .iter()
                .map(|&i| values[i].cell().replace(['\n', '\t'], " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = TABLE.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, out: &mut dyn Write| -> io::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(TABLE.to_vec(), out)?;
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), out)?;
    }
    Ok(())
}

/// One event as a CSV line (no line end), every column in [`COLUMNS`] order.
pub(crate) fn csv_row(event: &StoredEvent) -> String {
    let cells: Vec<String> = event
        .column_values()
        .iter()
        .map(|v| csv_cell(&v.cell()))
        .collect();
    cells.join(",")
}

/// One CSV cell. A value a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a CR: CSV injection, CWE-1236) gets a leading `'`, as OWASP recommends: user
/// agents, query strings and IdP-supplied names are the client's to choose, and the export
/// is opened by the people who investigate them.
fn csv_cell(text: &str) -> String {
    let guarded;
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{text}");
        guarded.as_str()
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::{AuditEvent, kind};

    #[test]
    fn times_parse_as_durations_or_timestamps() {
        let now: Timestamp = "2026-11-05T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_time("15m", now).unwrap(),
            "2026-11-05T09:45:00.000000Z"
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:00+01:00", now).unwrap(),
            "2025-12-31T23:00:00.000000Z"
        );
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\r=1", "\"'\r=1\""),
            ("curl/8.0", "curl/8.0"),
            ("a=1", "a=1"),
            ("", ""),
        ];
        for (value, cell) in cases {
            assert_eq!(csv_cell(value), cell, "{value:?}");
        }
    }

    #[test]
    fn renders_every_format() {
        let mut chain = Chain::resume("i", None);
        let event = chain.append(AuditEvent {
            path: Some("/a,\"b\"".into()),
            status: Some(200),
            ..AuditEvent::new(kind::REQUEST, Timestamp::UNIX_EPOCH)
        });
        let mut json = Vec::new();
        render(std::slice::from_ref(&event), Format::Json, &mut json).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(line["path"], "/a,\"b\"");
        assert_eq!(line["status"], 200);
        let mut csv = Vec::new();
        render(std::slice::from_ref(&event), Format::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with("id,decision_id,ts,"), "{csv}");
        assert!(csv.contains(",\"/a,\"\"b\"\"\","), "{csv}");
        let mut table = Vec::new();
        render(&[event], Format::Table, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.lines().next().unwrap().starts_with("ts "), "{table}");
        assert!(table.contains("request"), "{table}");
    }
}
