//! How results reach the user: tables (coloured only on a terminal, never with `--json` or
//! `NO_COLOR`) or JSON for machines. Every write goes through here, so a closed pipe ends the
//! program quietly instead of panicking as `println!` would.

use std::io::{IsTerminal, Write};

use comfy_table::presets::NOTHING;
use comfy_table::{Attribute, Cell, Color, Table};
use serde::Serialize;

use crate::failure::Failure;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`: JSON on stdout, nothing else there.
    pub json: bool,
    /// stdout is a terminal: pretty JSON, redraws in place.
    pub terminal: bool,
    /// Colours and bold: a terminal, no `--json`, no `NO_COLOR`.
    pub color: bool,
}

impl Output {
    pub fn detect(json: bool) -> Output {
        let terminal = std::io::stdout().is_terminal();
        // https://no-color.org: any non-empty value turns colour off.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Output {
            json,
            terminal,
            color: terminal && !json && !no_color,
        }
    }

    /// Writes `text` to stdout as it is.
    pub fn write(&self, text: &str) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    /// Writes `value` as JSON and a newline: indented on a terminal, one line otherwise.
    pub fn json<T: Serialize>(&self, value: &T) -> Result<(), Failure> {
        let text = if self.terminal {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .map_err(|err| Failure::failed(format!("cannot write the answer as JSON: {err}")))?;
        self.write(&(text + "\n"))
    }

    /// A borderless table (kubectl-style columns) with `header` in bold when colour is on.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table.load_style(NOTHING);
        if self.color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(
            header
                .iter()
                .map(|title| Cell::new(title).add_attribute(Attribute::Bold)),
        );
        // Columns start at the left margin and are two spaces apart, as other tools' are.
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        table
    }

    /// The lines of a table, without the padding at their ends.
    pub fn table_text(&self, table: &Table) -> String {
        table
            .lines()
            .map(|line| line.trim_end().to_owned() + "\n")
            .collect()
    }

    /// Writes a table.
    pub fn table_out(&self, table: &Table) -> Result<(), Failure> {
        self.write(&self.table_text(table))
    }
}

/// A number cell, red when it counts errors.
pub fn count_cell(count: u64, is_error: bool) -> Cell {
    let cell = Cell::new(count);
    if is_error && count > 0 {
        cell.fg(Color::Red)
    } else {
        cell
    }
}

/// Nanoseconds as a person reads them: 850ns, 12.3µs, 4.5ms, 1.20s.
pub fn duration_text(nanos: u64) -> String {
    let n = nanos as f64;
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{:.1}µs", n / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.1}ms", n / 1e6)
    } else {
        format!("{:.2}s", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_text(850), "850ns");
        assert_eq!(duration_text(12_340), "12.3µs");
        assert_eq!(duration_text(4_500_000), "4.5ms");
        assert_eq!(duration_text(1_200_000_000), "1.20s");
    }

    #[test]
    fn a_table_without_colour_has_no_escape_codes() {
        let output = Output {
            json: false,
            terminal: false,
            color: false,
        };
        let mut table = output.table(&["KIND", "ERRORS"]);
        table.add_row(vec![Cell::new("counter"), count_cell(3, true)]);
        let text = table.to_string();
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains("KIND") && text.contains("counter"));
    }
}
