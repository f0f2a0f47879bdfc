//! cargo-fuzz target `roster_op`: arbitrary bytes into `deskmesh_fuzzing::roster_op` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::roster_op(data));
