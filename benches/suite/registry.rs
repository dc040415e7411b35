//! Benchmarks of the registry group (see BENCHMARKS.md for what each target means).

use crate::measure::Table;

pub fn run(_table: &mut Table) {
    // Cases are added by the issue-5 work on this group.
}
