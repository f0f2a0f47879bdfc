//! cargo-fuzz target `control_line`: arbitrary bytes into `deskmesh_fuzzing::control_line` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::control_line(data));
