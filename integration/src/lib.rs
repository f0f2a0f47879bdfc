//! Integration test support crate: the tests live in tests/.
