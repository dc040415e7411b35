//! The one table style every command uses, and the terminal it is for.
//!
//! On a terminal a table is drawn with box characters, sized to the
//! terminal; when stdout is a pipe or a file it is plain aligned columns
//! under a header row, one line per row, which `grep`, `awk` and `cut`
//! read without help (as `gh` and `kubectl` do). In either form an id, a
//! hash, a time or a count is never wrapped or cut: only the free-text
//! columns ([`FREE_TEXT`]) give up width when the terminal is narrow.
//!
//! Colour marks statuses and findings on a terminal. `--color
//! auto|always|never` chooses; `auto` means "stdout is a terminal, and
//! `NO_COLOR` is unset or empty, and `TERM` is not `dumb`". Colour never
//! carries meaning on its own: the word is always there.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Width, presets};
// Columns line up by the cells a terminal gives each character: a CJK
// title takes two per character, a combining accent none.
use unicode_width::UnicodeWidthStr;

/// Headers of the columns that may wrap on a narrow terminal: prose, not
/// identifiers.
pub const FREE_TEXT: [&str; 4] = ["REASON", "ERROR", "TITLE", "RESULT"];

/// The narrowest a free-text column is made, in characters.
const MIN_FREE_TEXT_WIDTH: u16 = 16;

/// Width used on a terminal that does not report its size (a fresh pty,
/// some CI consoles) and sets no `COLUMNS`.
const DEFAULT_WIDTH: u16 = 120;

/// When to colour output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

static COLOR: OnceLock<bool> = OnceLock::new();

/// Decide once, at start-up, whether this process colours its stdout.
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    };
    let _ = COLOR.set(on);
}

pub fn color_enabled() -> bool {
    *COLOR.get().unwrap_or(&false)
}

/// The colour a status or finding word is shown in, if any.
fn color_of(word: &str) -> Option<Color> {
    match word {
        "complete" | "executed" | "ok" | "identical" | "removed" | "written" => Some(Color::Green),
        "failed" | "problem" | "drift" | "missing" | "differs" | "changed" => Some(Color::Red),
        "running" | "interrupted" | "kept" | "deleting" => Some(Color::Yellow),
        "skipped" | "not_run" => Some(Color::DarkGrey),
        _ => None,
    }
}

/// `text` wrapped in the ANSI colour of its word when colour is on: for
/// status words printed outside tables.
pub fn paint(text: &str) -> String {
    let code = match color_of(text.trim()) {
        Some(Color::Green) => "32",
        Some(Color::Red) => "31",
        Some(Color::Yellow) => "33",
        Some(Color::DarkGrey) => "90",
        _ => return text.to_string(),
    };
    if color_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `text` in red when colour is on: for a finding (a `verify` problem
/// kind), whatever its word.
pub fn paint_problem(text: &str) -> String {
    if color_enabled() {
        format!("\x1b[31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `text` safe to print on a terminal: every control character (ESC, BEL,
/// CR, newline…) shown escaped, as `\u{1b}`. A title, a path or a
/// generator's error comes from files anyone may write; printed raw, an
/// escape sequence in it would recolour, retitle or rewrite the user's
/// terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A table with a header row; `Display` renders it for where stdout goes.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// A table with `headers`; add rows, then print it with `{}`.
pub fn new_table(headers: &[&str]) -> Table {
    Table {
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows: Vec::new(),
    }
}

impl Table {
    pub fn add_row(&mut self, row: Vec<String>) -> &mut Self {
        // Tabs and newlines would split a row; other control characters
        // would reach the terminal.
        self.rows.push(
            row.into_iter()
                .map(|cell| printable(&cell.replace(['\n', '\r', '\t'], " ")))
                .collect(),
        );
        self
    }

    /// Plain aligned columns: two spaces apart, the last one unpadded.
    fn plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.width());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String], colour: bool, first: bool| {
            let mut out = String::new();
            for (i, text) in cells.iter().enumerate().take(columns) {
                let last = i + 1 == columns;
                let pad = if last {
                    0
                } else {
                    widths[i].saturating_sub(text.width())
                };
                if colour && self.is_status_column(i) {
                    out.push_str(&paint(text));
                } else {
                    out.push_str(text);
                }
                if !last {
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            // Like the boxed form, no newline after the last line: callers
            // print tables with `writeln!`.
            let sep = if first { "" } else { "\n" };
            write!(f, "{sep}{}", out.trim_end())
        };
        line(f, &self.headers, false, true)?;
        for row in &self.rows {
            line(f, row, color_enabled(), false)?;
        }
        Ok(())
    }

    fn is_status_column(&self, i: usize) -> bool {
        matches!(self.headers[i].as_str(), "STATUS" | "RESULT" | "OK")
    }

    /// Box drawing sized to the terminal; only free-text columns shrink.
    fn boxed(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = comfy_table::Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(terminal_width())
            .set_header(self.headers.clone());
        let colour = color_enabled();
        for row in &self.rows {
            let cells: Vec<Cell> = row
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let cell = Cell::new(text);
                    match color_of(text).filter(|_| colour && self.is_status_column(i)) {
                        Some(c) => cell.fg(c),
                        None => cell,
                    }
                })
                .collect();
            table.add_row(cells);
        }
        for (i, header) in self.headers.iter().enumerate() {
            let Some(column) = table.column_mut(i) else {
                continue;
            };
            if FREE_TEXT.contains(&header.as_str()) {
                // On a terminal too narrow for the fixed columns, prose
                // still gets a readable width (the table then overflows,
                // as it must rather than cut an id), never one letter a line.
                let widest = self
                    .rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .chain([header])
                    .map(|text| text.width())
                    .max()
                    .unwrap_or(0);
                let floor = u16::try_from(widest)
                    .unwrap_or(u16::MAX)
                    .min(MIN_FREE_TEXT_WIDTH);
                // The constraint counts the cell's padding, one each side.
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(floor + 2)));
            } else {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        write!(f, "{table}")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if std::io::stdout().is_terminal() {
            self.boxed(f)
        } else {
            self.plain(f)
        }
    }
}

/// The terminal's width: what it reports, else `COLUMNS`, else
/// [`DEFAULT_WIDTH`]. A size of zero (a pty nobody sized) is no size.
fn terminal_width() -> u16 {
    reported_width()
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()?
                .parse::<u16>()
                .ok()
                .filter(|w| *w > 0)
        })
        .unwrap_or(DEFAULT_WIDTH)
}

#[cfg(unix)]
fn reported_width() -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only fills the winsize struct it is given.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col)
}

#[cfg(not(unix))]
fn reported_width() -> Option<u16> {
    None
}

/// `1234` → `1.2 s`; `87` → `87 ms`; absent → `-`.
pub fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "-".to_string(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}
