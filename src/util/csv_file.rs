//! CSV files: one reader that names the file, line and column at fault, and one writer of `Serialize`
//! rows (atomic, header always present). Numbers are written in Rust's shortest round-trip form.
use super::fs::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use std::path::Path;

/// Reads a CSV whose header must hold `expected` (any order, extra columns ignored); `check` validates each
/// row. Errors read `FILE line N: ...`.
pub fn read_csv<T: DeserializeOwned>(
    path: &Path,
    expected: &[&str],
    check: impl Fn(&T) -> Result<()>,
) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(file);
    let headers = reader.headers().with_context(|| format!("{}: unreadable header", path.display()))?.clone();
    let missing: Vec<&str> = expected.iter().copied().filter(|col| !headers.iter().any(|h| h == *col)).collect();
    if !missing.is_empty() {
        bail!("{}: missing column(s) {} (expected header {})", path.display(), missing.join(","), expected.join(","));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| anyhow!("{}: {}", path.display(), csv_error_text(&e)))?;
        let line = record.position().map_or(0, |p| p.line());
        let row: T = record.deserialize(Some(&headers)).map_err(|e| match e.kind() {
            csv::ErrorKind::Deserialize { err, .. } => {
                let column = err.field().and_then(|i| headers.get(i as usize)).unwrap_or("?");
                anyhow!("{} line {line}, column {column}: {}", path.display(), err.kind())
            }
            _ => anyhow!("{} line {line}: {e}", path.display()),
        })?;
        check(&row).map_err(|e| anyhow!("{} line {line}: {e}", path.display()))?;
        rows.push(row);
    }
    Ok(rows)
}

/// csv's own message without its "CSV error:" prefix (it already says the line).
fn csv_error_text(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => {
            let line = pos.as_ref().map_or(0, |p| p.line());
            format!("line {line}: {len} fields, expected {expected_len}")
        }
        _ => err.to_string(),
    }
}

/// `header` and one line per row, as CSV text. The header is written even with no rows.
pub fn csv_text<T: Serialize>(header: &[&str], rows: &[T]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    writer.write_record(header)?;
    for row in rows {
        writer.serialize(row)?;
    }
    writer.into_inner().map_err(|e| anyhow!("serialising CSV rows: {e}"))
}

/// One row as a CSV line, without its newline.
pub fn csv_line<T: Serialize>(row: &T) -> Result<String> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    writer.serialize(row)?;
    let bytes = writer.into_inner().map_err(|e| anyhow!("serialising a CSV row: {e}"))?;
    Ok(String::from_utf8(bytes)?.trim_end_matches(['\r', '\n']).to_string())
}

/// Writes `header` and `rows` to `path` atomically.
pub fn write_csv<T: Serialize>(path: &Path, header: &[&str], rows: &[T]) -> Result<()> {
    let text = csv_text(header, rows).with_context(|| format!("writing {}", path.display()))?;
    write_atomic(path, &text)
}

// Float fields for `serialize_with`, each for an `f64` or an `Option<f64>` (None is an empty field).

/// As Rust's `Display` writes a float: `1` for 1.0, the shortest round trip.
pub fn shortest<S: Serializer, F: Copy + Into<Option<f64>>>(value: &F, s: S) -> Result<S::Ok, S::Error> {
    float((*value).into(), None, s)
}

/// Six decimals, as the analysis CSVs write them.
pub fn six_decimals<S: Serializer, F: Copy + Into<Option<f64>>>(value: &F, s: S) -> Result<S::Ok, S::Error> {
    float((*value).into(), Some(6), s)
}

/// Four decimals.
pub fn four_decimals<S: Serializer, F: Copy + Into<Option<f64>>>(value: &F, s: S) -> Result<S::Ok, S::Error> {
    float((*value).into(), Some(4), s)
}

fn float<S: Serializer>(value: Option<f64>, decimals: Option<usize>, s: S) -> Result<S::Ok, S::Error> {
    match (value, decimals) {
        (Some(v), None) => s.collect_str(&v),
        (Some(v), Some(d)) => s.collect_str(&format_args!("{v:.d$}")),
        (None, _) => s.serialize_none(),
    }
}
