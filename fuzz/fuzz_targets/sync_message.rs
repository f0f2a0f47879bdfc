//! cargo-fuzz target `sync_message`: arbitrary bytes into `deskmesh_fuzzing::sync_message` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::sync_message(data));
