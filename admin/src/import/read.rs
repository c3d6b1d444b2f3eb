//! Reading a spreadsheet (CSV in UTF-8 or GB18030, or XLSX/XLS/ODS) into rows of text cells,
//! each with the line (row) number a user sees in their editor.

use calamine::{Data, Reader};
use std::path::Path;

/// One row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based, as shown by a text editor (CSV) or a spreadsheet program.
    pub line: usize,
    pub cells: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable CSV file: {detail}", path.display())]
    Csv {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("{}: not a readable spreadsheet: {detail}", path.display())]
    Spreadsheet {
        path: std::path::PathBuf,
        detail: String,
    },
}

/// Reads CSV by default, a workbook's first sheet for `.xlsx`, `.xlsm`, `.xls` and `.ods`.
pub fn read_rows(path: &Path) -> Result<Vec<Row>, ReadError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => read_workbook(path),
        _ => {
            let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?;
            read_csv(&bytes).map_err(|detail| ReadError::Csv {
                path: path.to_owned(),
                detail,
            })
        }
    }
}

/// UTF-8 (with or without a byte-order mark), else GB18030, which is what Excel on a Chinese
/// Windows writes for "CSV".
pub fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

pub fn read_csv(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let text = decode_text(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = record
            .position()
            .map(|p| usize::try_from(p.line()).unwrap_or(usize::MAX))
            .unwrap_or(0);
        rows.push(Row {
            line,
            cells: record
                .iter()
                .map(|c| undo_formula_escape(c.trim()))
                .collect(),
        });
    }
    Ok(rows)
}

/// Exports put an apostrophe before a cell a spreadsheet would run as a formula
/// (`crate::audit::spreadsheet_safe`); reading such a file back takes it off again.
fn undo_formula_escape(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_owned(),
        _ => cell.to_owned(),
    }
}

/// Rows of a file given as bytes (an upload): CSV, or a workbook when `workbook` is true.
pub fn read_rows_from_bytes(bytes: &[u8], workbook: bool) -> Result<Vec<Row>, ReadError> {
    let path = std::path::PathBuf::from("(upload)");
    if !workbook {
        return read_csv(bytes).map_err(|detail| ReadError::Csv { path, detail });
    }
    let bad = |detail: String| ReadError::Spreadsheet {
        path: path.clone(),
        detail,
    };
    let mut workbook = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| bad(e.to_string()))?;
    rows_of_first_sheet(&mut workbook).map_err(bad)
}

fn rows_of_first_sheet<R: std::io::Read + std::io::Seek>(
    workbook: &mut calamine::Sheets<R>,
) -> Result<Vec<Row>, String> {
    let sheet = workbook
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| "the workbook has no sheet".to_owned())?;
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| e.to_string())?;
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, cells)| Row {
            line: first_row + i + 1,
            cells: cells.iter().map(cell_text).collect(),
        })
        .collect())
}

fn read_workbook(path: &Path) -> Result<Vec<Row>, ReadError> {
    let bad = |detail: String| ReadError::Spreadsheet {
        path: path.to_owned(),
        detail,
    };
    let mut workbook = calamine::open_workbook_auto(path).map_err(|e| bad(e.to_string()))?;
    rows_of_first_sheet(&mut workbook).map_err(bad)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        // Phone numbers and codes typed as numbers come back as floats: 13812345678.0.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Int(i) => i.to_string(),
        other => other.to_string().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_saved_by_chinese_excel_in_gb18030_reads_like_utf8() {
        let text = "\u{feff}简码,单位简称\n01,李渡街道党工委\n";
        let (gb, _, bad) = encoding_rs::GB18030.encode(text.trim_start_matches('\u{feff}'));
        assert!(!bad);
        assert!(std::str::from_utf8(&gb).is_err(), "really not UTF-8");
        let expected = vec![
            Row {
                line: 1,
                cells: vec!["简码".into(), "单位简称".into()],
            },
            Row {
                line: 2,
                cells: vec!["01".into(), "李渡街道党工委".into()],
            },
        ];
        assert_eq!(read_csv(&gb).unwrap(), expected);
        assert_eq!(read_csv(text.as_bytes()).unwrap(), expected);
    }
}
