//! Placeholder crate root; filled in by the foundation work.
pub mod store;
pub mod sync;
