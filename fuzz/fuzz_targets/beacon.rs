//! cargo-fuzz target `beacon`: arbitrary bytes into `deskmesh_fuzzing::beacon` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::beacon(data));
