//! The vocabularies the registry records, the same on every backend: a
//! run's status and a stage execution's. Stored as the lowercase words
//! the schema's CHECK constraints list, shown and serialised as the same
//! words, so `runs list --json` reads alike whatever the registry is.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::db::{FromColumn, ToValue, Value};
use crate::error::{Error, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunStatus {
    /// Recorded as running; a listing shows a run whose process is gone
    /// as [`RunStatus::Interrupted`] instead.
    Running,
    Complete,
    Failed,
    /// Never stored: what a `running` run whose lock nobody holds is.
    Interrupted,
}

/// What one stage decision of one invocation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecutionStatus {
    /// Recorded before the stage computes; completed at its commit.
    Running,
    Executed,
    Skipped,
    Failed,
    /// A `running` row whose process died, marked by the run's next start.
    Interrupted,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the run has ended (complete or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Complete | RunStatus::Failed)
    }
}

impl ExecutionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Executed => "executed",
            ExecutionStatus::Skipped => "skipped",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the stage produced (or kept) its artifact.
    pub fn is_done(self) -> bool {
        matches!(self, ExecutionStatus::Executed | ExecutionStatus::Skipped)
    }
}

macro_rules! vocabulary {
    ($t:ident, $what:literal, [$($v:ident),+]) => {
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $(if s == $t::$v.as_str() { return Ok($t::$v); })+
                Err(Error::Inconsistent(format!(
                    concat!("the registry holds ", $what, " `{}`, which this version does not know"),
                    s.escape_debug()
                )))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Text(std::borrow::Cow::Borrowed(self.as_str()))
            }
        }

        impl FromColumn for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
                String::from_sqlite(row, idx)?.parse()
            }
            fn from_postgres(row: &::postgres::Row, idx: usize) -> Result<Self> {
                String::from_postgres(row, idx)?.parse()
            }
        }
    };
}

vocabulary!(
    RunStatus,
    "a run status",
    [Running, Complete, Failed, Interrupted]
);
vocabulary!(
    ExecutionStatus,
    "a stage execution status",
    [Running, Executed, Skipped, Failed, Interrupted]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_unknown_words_are_refused() {
        for s in [
            RunStatus::Running,
            RunStatus::Complete,
            RunStatus::Failed,
            RunStatus::Interrupted,
        ] {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
        for s in [
            ExecutionStatus::Running,
            ExecutionStatus::Executed,
            ExecutionStatus::Skipped,
            ExecutionStatus::Failed,
            ExecutionStatus::Interrupted,
        ] {
            assert_eq!(s.as_str().parse::<ExecutionStatus>().unwrap(), s);
        }
        assert!("Complete".parse::<RunStatus>().is_err());
        assert_eq!(
            serde_json::to_string(&RunStatus::Interrupted).unwrap(),
            "\"interrupted\""
        );
    }
}
