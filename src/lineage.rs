//! Lineage queries (in progress).
