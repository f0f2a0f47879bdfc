//! cargo-fuzz target `signed_change`: arbitrary bytes into `deskmesh_fuzzing::signed_change` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::signed_change(data));
