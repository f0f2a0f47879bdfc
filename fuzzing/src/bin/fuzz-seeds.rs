//! Writes the seed corpus `fuzz/seeds/<target>/` from the fixture alliance: one or a few valid inputs per
//! target, so the fuzzers start from bytes that reach deep into each decoder. Run it from the repository
//! root after a format change (`cargo run -p deskmesh-fuzzing --bin fuzz-seeds`); the files are committed
//! and replayed by `cargo test -p deskmesh-fuzzing`. Files already there (regressions the fuzzers found)
//! are kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use deskmesh_core::api::{Hello, Request as ApiRequest, PROTOCOL};
use deskmesh_core::ingest::{self, SignedItem};
use deskmesh_core::ops::listing::{FieldEdits, FileBytes, FileFormat, ListingBase, ListingEdit};
use deskmesh_crdt_model::query::Query;
use deskmesh_fuzzing::fixture;
use deskmesh_keys::invite;
use deskmesh_node::mesh::behaviour::{pack, Reply, Request, WireItem};
use deskmesh_sync::{Config, Intent, Item, ItemId, ItemKind, SyncEngine};
use libp2p::request_response::Codec;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from("fuzz/seeds");
    let f = fixture::get();
    let wire: Vec<WireItem> = f
        .ops
        .iter()
        .map(|op| WireItem {
            kind: ItemKind::RosterOp,
            bytes: op.to_bytes(),
        })
        .chain([
            WireItem {
                kind: ItemKind::ListingChange,
                bytes: f.change.clone(),
            },
            WireItem {
                kind: ItemKind::SeatBeacon,
                bytes: f.beacon.clone(),
            },
        ])
        .collect();

    // Sync messages: an opening round from an engine with items, and a fetch.
    let items = (0u8..100).map(|i| Item::new(ItemKind::ALL[usize::from(i) % 3], ItemId([i; 32])));
    let mut engine = SyncEngine::with_items(Config::default(), 3, items)?;
    let mut sync = Vec::new();
    for intent in engine.connected(1u8, Duration::ZERO) {
        if let Intent::Send(_, msg) = intent {
            sync.push(msg.encode()?);
        }
    }
    sync.push(deskmesh_sync::Msg::Want(vec![ItemId([5; 32])]).encode()?);

    let mut codec = libp2p::request_response::cbor::codec::Codec::<Request, Reply>::default();
    let protocol = libp2p::StreamProtocol::new("/deskmesh/sync/3");
    let cbor = |req: Request| -> anyhow::Result<Vec<u8>> {
        let mut out = futures::io::Cursor::new(Vec::new());
        futures::executor::block_on(codec.clone().write_request(&protocol, &mut out, req))?;
        Ok(out.into_inner())
    };
    write(
        &root,
        "wire_request",
        "items.cbor",
        &cbor(Request::Items(pack(&wire)?))?,
    )?;
    write(
        &root,
        "wire_request",
        "sync.cbor",
        &cbor(Request::Sync(sync[0].clone()))?,
    )?;
    let _ = &mut codec;

    for (n, msg) in sync.iter().enumerate() {
        write(&root, "sync_message", &format!("msg-{n}.bin"), msg)?;
    }
    for (n, item) in wire.iter().enumerate() {
        write(
            &root,
            "gossip",
            &format!("item-{n}.postcard"),
            &postcard::to_stdvec(item)?,
        )?;
    }
    write(&root, "signed_change", "change.bin", &f.change)?;
    for (n, op) in f.ops.iter().enumerate() {
        write(&root, "roster_op", &format!("op-{n}.bin"), &op.to_bytes())?;
    }
    write(&root, "beacon", "beacon.bin", &f.beacon)?;

    let payload = |token: &str, prefix: &str| -> anyhow::Result<Vec<u8>> {
        let body = token.strip_prefix(prefix).context("token prefix")?;
        let mut bytes = data_encoding_decode(body)?;
        bytes.truncate(bytes.len().saturating_sub(4));
        Ok(bytes)
    };
    write(
        &root,
        "invite_token",
        "space.txt",
        &[&[0u8][..], f.invite.as_bytes()].concat(),
    )?;
    write(
        &root,
        "invite_token",
        "member.txt",
        &[&[0u8][..], f.member.as_bytes()].concat(),
    )?;
    let member = payload(&f.member, invite::MEMBER_PREFIX)?;
    write(
        &root,
        "invite_token",
        "member.payload",
        &[&[1u8][..], &member].concat(),
    )?;
    let space = payload(&f.invite, invite::TOKEN_PREFIX)?;
    write(
        &root,
        "invite_token",
        "space.payload",
        &[&[2u8][..], &space].concat(),
    )?;

    write(&root, "bundle", "space.bundle", &f.bundle)?;

    let value: serde_json::Value = serde_json::from_str(&f.listing_json)?;
    write(
        &root,
        "listing",
        "listing.json",
        &[&[0u8][..], f.listing_json.as_bytes()].concat(),
    )?;
    let toml = toml::to_string(&value)?;
    write(
        &root,
        "listing",
        "listing.toml",
        &[&[1u8][..], toml.as_bytes()].concat(),
    )?;

    let hello = serde_json::to_string(&Hello {
        protocol: PROTOCOL,
        client: "fuzz".into(),
        binary_answers: false,
    })?;
    let requests = [
        ApiRequest::Status,
        ApiRequest::SpacesList(Query::default()),
        ApiRequest::SpaceEdit(ListingEdit {
            base: Some(ListingBase::File(FileBytes {
                name: "listing.json".into(),
                format: FileFormat::Json,
                bytes: deskmesh_core::api::Bytes(f.listing_json.clone().into_bytes()),
            })),
            fields: FieldEdits {
                name: Some("Renamed".into()),
                ..FieldEdits::default()
            },
        }),
        ApiRequest::ImportItems(vec![SignedItem::new(
            ingest::ItemKind::SeatBeacon,
            f.beacon.clone(),
        )]),
        ApiRequest::Audit,
    ];
    let mut session = format!("{hello}\n");
    for r in &requests {
        session.push_str(&serde_json::to_string(r)?);
        session.push('\n');
    }
    write(&root, "control_line", "session.jsonl", session.as_bytes())?;
    println!("seeds written under {}", root.display());
    Ok(())
}

fn data_encoding_decode(body: &str) -> anyhow::Result<Vec<u8>> {
    // Tokens are lowercase base32 without padding.
    let upper = body.to_ascii_uppercase();
    base32_nopad(&upper)
}

/// RFC 4648 base32 without padding (the token alphabet), decoded by hand to keep this tool's
/// dependencies those of the library.
fn base32_nopad(text: &str) -> anyhow::Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .context("not base32")? as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes).with_context(|| format!("cannot write {target}/{name}"))
}
