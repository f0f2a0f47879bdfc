//! The bodies of deskmesh's fuzz targets: one plain function per decoder of outside input, each taking
//! arbitrary bytes as far into the node as those bytes can go (decode, verify, then the node's one
//! ingest path or the sync engine, on a fresh node over the in-memory store built from [`fixture`]).
//!
//! `fuzz/` (cargo-fuzz, nightly) calls each function from a `fuzz_target!`; `tests/corpus.rs` replays
//! every committed seed in `fuzz/seeds/<target>/` through the same functions with stable Rust, so CI runs
//! the corpus without cargo-fuzz. A target fails by panicking (or by libFuzzer's memory and time limits);
//! every `Err` from a decoder is the expected answer to garbage.
//!
//! | target | input | reaches |
//! |---|---|---|
//! | `wire_request` | a request-response message as the CBOR codec reads it | `unpack` then `Node::ingest` (items), or the sync engine |
//! | `sync_message` | one encoded sync message | `Msg::decode`, then an engine holding items |
//! | `gossip` | a gossip payload (postcard `WireItem`) | `Node::ingest` from the mesh |
//! | `signed_change` | a signed listing change | envelope, signature, Automerge rebuild under the roster |
//! | `roster_op` | a signed roster operation | signatures, insertion into the alliance's roster |
//! | `beacon` | a signed seat beacon | decode, verify |
//! | `invite_token` | token text, or a raw payload behind a valid checksum | `Invite`/`MemberInvite` parse, `alliance join` |
//! | `bundle` | a bundle file | `Bundle::decode`, import through ingest |
//! | `listing` | listing JSON or TOML | parse, validation, round trip |
//! | `control_line` | bytes sent to the control socket | bounded line reads, handshake, request parse, `api::serve` |

pub mod fixture;

use std::time::Duration;

use deskmesh_core::api::{self, Request as ApiRequest};
use deskmesh_core::bundle::Bundle;
use deskmesh_core::ingest::{self, At, SignedItem, Source};
use deskmesh_core::node::RosterAuthority;
use deskmesh_crdt_model::beacon::SignedBeacon;
use deskmesh_crdt_model::change::SignedChange;
use deskmesh_crdt_model::doc::SpaceDoc;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::invite::{self, Invite, MemberInvite};
use deskmesh_keys::roster::{Roster, SignedOp};
use deskmesh_node::control::server::{self as control, Line};
use deskmesh_node::mesh::behaviour::{unpack, Reply, Request, WireItem, MAX_REQUEST_BYTES};
use deskmesh_sync::{Config, Item, ItemId, ItemKind, SyncEngine};
use libp2p::request_response::Codec;

/// A target's body: arbitrary bytes in, a panic on failure.
pub type Target = fn(&[u8]);

/// Every target by name, in the order the table above lists them.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_request", wire_request),
    ("sync_message", sync_message),
    ("gossip", gossip),
    ("signed_change", signed_change),
    ("roster_op", roster_op),
    ("beacon", beacon),
    ("invite_token", invite_token),
    ("bundle", bundle),
    ("listing", listing),
    ("control_line", control_line),
];

/// Run at the start of every target. libFuzzer's panic hook aborts on every panic, even one the code
/// under test catches on purpose (the node catches automerge's panics on malformed changes); this hook
/// prints and returns instead. A panic that escapes the target still ends the run: libfuzzer-sys aborts
/// when the target unwinds.
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
}

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn ok<T>(r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("the fuzz fixture failed: {e:#}"))
}

/// The core's kind of a wire kind.
fn core_kind(kind: ItemKind) -> ingest::ItemKind {
    match kind {
        ItemKind::RosterOp => ingest::ItemKind::RosterOp,
        ItemKind::ListingChange => ingest::ItemKind::ListingChange,
        ItemKind::SeatBeacon => ingest::ItemKind::SeatBeacon,
        ItemKind::Checkpoint => ingest::ItemKind::Checkpoint,
        ItemKind::Verification => ingest::ItemKind::Verification,
        ItemKind::Proposal => ingest::ItemKind::Proposal,
    }
}

/// Items from the mesh into a fresh member's node, then the waiting ones judged as if their time ran out.
fn ingest_from_mesh(items: Vec<WireItem>) {
    let mut node = ok(fixture::member_node());
    let items: Vec<SignedItem> = items
        .into_iter()
        .map(|w| SignedItem::new(core_kind(w.kind), w.bytes))
        .collect();
    let report = node.ingest(items.clone(), Source::Mesh, At::now());
    assert_eq!(report.outcomes.len(), items.len(), "one outcome per item");
    let later = At {
        mono: std::time::Instant::now() + ingest::MAX_WAIT + Duration::from_secs(1),
        wall: chrono::Utc::now(),
    };
    node.expire_waiting(later);
    // What was stored must still verify when read back.
    ok(node.audit(chrono::Utc::now()));
}

/// A sync engine holding a few items, as a peer's messages find it.
fn engine() -> SyncEngine<u8> {
    let items = (0u8..40).map(|i| {
        let kind = ItemKind::ALL[usize::from(i) % ItemKind::ALL.len()];
        Item::new(kind, ItemId([i.wrapping_mul(37); 32]))
    });
    ok(SyncEngine::with_items(Config::default(), 7, items).map_err(anyhow::Error::from))
}

/// A request-response message, read by the same CBOR codec and size limit the mesh uses.
pub fn wire_request(data: &[u8]) {
    setup();
    let mut codec = libp2p::request_response::cbor::codec::Codec::<Request, Reply>::default()
        .set_request_size_maximum(MAX_REQUEST_BYTES);
    let protocol = libp2p::StreamProtocol::new("/deskmesh/sync/3");
    let mut io = futures::io::Cursor::new(data);
    let Ok(request) = futures::executor::block_on(codec.read_request(&protocol, &mut io)) else {
        return;
    };
    match request {
        Request::Sync(bytes) => {
            let mut engine = engine();
            let _ = engine.received_bytes(&1, &bytes, Duration::from_secs(1));
            let _ = engine.tick(Duration::from_secs(60));
        }
        Request::Items(packed) => {
            // A batch is zstd-packed; unpacking is bounded, and garbage is refused before ingest.
            if let Ok(items) = unpack(&packed) {
                ingest_from_mesh(items);
            }
        }
    }
}

/// One sync message from a peer, then time passing; a message that decodes must encode back to itself.
pub fn sync_message(data: &[u8]) {
    setup();
    let mut engine = engine();
    if let Ok(msg) = deskmesh_sync::Msg::decode(data) {
        let again = msg.encode().expect("a decoded message encodes");
        assert_eq!(
            deskmesh_sync::Msg::decode(&again).as_ref(),
            Ok(&msg),
            "decode(encode(m)) == m"
        );
    }
    let _ = engine.received_bytes(&1, data, Duration::from_secs(1));
    // A second peer sends the same bytes while the first session is open.
    let _ = engine.received_bytes(&2, data, Duration::from_secs(2));
    for s in [5, 30, 120] {
        let _ = engine.tick(Duration::from_secs(s));
    }
}

/// A gossip message's payload, as the mesh decodes it before ingest.
pub fn gossip(data: &[u8]) {
    setup();
    if let Ok(item) = postcard::from_bytes::<WireItem>(data) {
        ingest_from_mesh(vec![item]);
    }
}

/// A signed listing change: its claimed envelope, its signature, and the listing rebuilt with it under
/// the alliance's roster.
pub fn signed_change(data: &[u8]) {
    setup();
    let Ok(change) = SignedChange::from_bytes(data) else {
        return;
    };
    let _ = change.envelope();
    let _ = change.verify_decoded();
    let f = fixture::get();
    let mut roster = ok(Roster::new(f.ops[0].clone()).map_err(anyhow::Error::from));
    for op in &f.ops[1..] {
        let _ = roster.insert(op.clone());
    }
    let known = ok(SignedChange::from_bytes(&f.change).map_err(anyhow::Error::from));
    let space = change
        .envelope()
        .map(|e| e.space)
        .unwrap_or_else(|_| f.space.clone());
    let doc = SpaceDoc::rebuild(space, [known, change], &RosterAuthority(Some(&roster)));
    let _ = doc.listing();
}

/// A signed roster operation, inserted into the alliance's roster after the known ones, and also tried
/// as the creation of an alliance of its own.
pub fn roster_op(data: &[u8]) {
    setup();
    let Ok(op) = SignedOp::from_bytes(data) else {
        return;
    };
    let _ = op.op();
    let _ = Roster::new(op.clone());
    let f = fixture::get();
    let mut roster = ok(Roster::new(f.ops[0].clone()).map_err(anyhow::Error::from));
    let _ = roster.insert(op.clone());
    for known in &f.ops[1..] {
        let _ = roster.insert(known.clone());
    }
    let _ = roster.insert(op);
    let _ = roster.ops_in_order();
}

/// A signed seat beacon: decode and verify at the current time.
pub fn beacon(data: &[u8]) {
    setup();
    let Ok(b) = SignedBeacon::from_bytes(data) else {
        return;
    };
    let _ = b.decode();
    let _ = b.verify(chrono::Utc::now().timestamp_millis());
}

/// Invite and member tokens. The first byte picks the form: token text as pasted, or a raw payload
/// wrapped with a valid checksum (random text almost never passes the checksum) as a member or a space
/// token. A token that parses is then joined by a fresh node.
pub fn invite_token(data: &[u8]) {
    setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => invite::token_text(invite::MEMBER_PREFIX, rest.to_vec()),
        _ => invite::token_text(invite::TOKEN_PREFIX, rest.to_vec()),
    };
    let space = Invite::parse(&text);
    let member = MemberInvite::parse(&text);
    if space.is_ok() || member.is_ok() {
        let mut node = ok(fixture::bare_node(2));
        let _ = node.alliance_join(&text);
    }
}

/// A bundle file: decoded, then imported batch by batch into a node of the alliance.
pub fn bundle(data: &[u8]) {
    setup();
    let Ok(bundle) = Bundle::decode(data) else {
        return;
    };
    let mut node = ok(fixture::member_node());
    for batch in bundle.batches(64 * 1024) {
        let _ = node.import_items(batch);
    }
    ok(node.audit(chrono::Utc::now()));
}

/// Listing JSON (first byte even) or TOML (odd). A listing that is accepted must be accepted again
/// from its own serialised form.
pub fn listing(data: &[u8]) {
    setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let parsed = if mode % 2 == 0 {
        Listing::from_json(&text)
    } else {
        Listing::from_toml(&text)
    };
    if let Ok(listing) = parsed {
        let value = listing.to_value();
        let again = Listing::from_value(value.clone())
            .unwrap_or_else(|e| panic!("an accepted listing is refused in its own form: {e}"));
        assert_eq!(again.to_value(), value, "the listing round-trips");
    }
}

/// Bytes a client sends to the control socket: lines read with a bound, the first as the handshake, the
/// rest as requests served by a space's node (subscriptions aside).
pub fn control_line(data: &[u8]) {
    setup();
    /// The bound used here; small, so the fuzzer reaches "too long" too.
    const MAX: usize = 16 * 1024;
    let mut reader = tokio::io::BufReader::with_capacity(64, data);
    let mut lines = Vec::new();
    while let Ok(line) = futures::executor::block_on(control::read_line(&mut reader, MAX)) {
        match line {
            Line::Full(bytes) => {
                assert!(bytes.len() <= MAX, "a line longer than the bound was read");
                lines.push(bytes);
            }
            Line::TooLong | Line::Eof => break,
        }
        if lines.len() >= 8 {
            break;
        }
    }
    let mut lines = lines.into_iter();
    let Some(hello) = lines.next() else {
        return;
    };
    let _ = control::welcome(&hello);
    let mut node: Option<deskmesh_core::Node> = None;
    for line in lines {
        let Ok(request) = control::parse_request(&line) else {
            continue;
        };
        if request == ApiRequest::Subscribe {
            continue;
        }
        let node = node.get_or_insert_with(|| ok(space_node()));
        let _ = api::serve(node, request, chrono::Utc::now());
    }
}

/// The space's own node, holding its listing and beacon.
fn space_node() -> anyhow::Result<deskmesh_core::Node> {
    let f = fixture::get();
    let mut node = fixture::bare_node(2)?;
    node.adopt_roster(&f.ops, &[])?;
    node.import_items(vec![
        SignedItem::new(ingest::ItemKind::ListingChange, f.change.clone()),
        SignedItem::new(ingest::ItemKind::SeatBeacon, f.beacon.clone()),
    ])?;
    Ok(node)
}
