//! cargo-fuzz target `wire_request`: arbitrary bytes into `deskmesh_fuzzing::wire_request` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::wire_request(data));
