//! Replays every committed seed of `fuzz/seeds/<target>/` through its target with stable Rust, so CI
//! checks the fuzzers' regressions without cargo-fuzz. A target with no seed directory fails: each one
//! must keep at least one input that reaches deep into its decoder.

use std::path::PathBuf;

#[test]
fn every_seed_of_every_target_replays_without_a_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut total = 0;
    for (name, run) in deskmesh_fuzzing::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no seed corpus for {name} at {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "the seed corpus of {name} is empty");
        for file in files {
            let bytes = std::fs::read(&file).expect("read a seed");
            run(&bytes);
            total += 1;
        }
    }
    assert!(total >= deskmesh_fuzzing::TARGETS.len());
}

#[test]
fn the_seeds_reach_past_the_decoders() {
    // The valid seeds must still be valid: a format change that breaks them would leave the fuzzers
    // starting from garbage. Spot-check one per kind of signed item.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let read = |p: &str| std::fs::read(root.join(p)).expect("seed present");
    assert!(deskmesh_crdt_model::change::SignedChange::from_bytes(&read(
        "signed_change/change.bin"
    ))
    .and_then(|c| c.verify())
    .is_ok());
    assert!(deskmesh_keys::roster::SignedOp::from_bytes(&read("roster_op/op-0.bin")).is_ok());
    assert!(
        deskmesh_crdt_model::beacon::SignedBeacon::from_bytes(&read("beacon/beacon.bin"))
            .and_then(|b| b.decode())
            .is_ok()
    );
    assert!(deskmesh_core::bundle::Bundle::decode(&read("bundle/space.bundle")).is_ok());
    assert!(deskmesh_sync::Msg::decode(&read("sync_message/msg-0.bin")).is_ok());
}
