//! Snapshot tests of every view.
