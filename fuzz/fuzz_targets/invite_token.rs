//! cargo-fuzz target `invite_token`: arbitrary bytes into `deskmesh_fuzzing::invite_token` (what it reaches: the table in fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| deskmesh_fuzzing::invite_token(data));
