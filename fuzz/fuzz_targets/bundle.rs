//! cargo-fuzz target `bundle`: arbitrary bytes into `deskmesh_fuzzing::bundle` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::bundle(data));
