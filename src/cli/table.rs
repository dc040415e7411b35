//! The one table style every command uses.

use comfy_table::{ContentArrangement, Table, presets};

/// A borderless-rows UTF-8 table with `headers`, wrapped to the terminal
/// width when there is one.
pub fn new_table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    table
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
