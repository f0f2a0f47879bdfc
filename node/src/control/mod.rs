//! The control socket `<home>/control.sock`: how front ends reach a running node (`deskmesh run`, or the
//! node `deskmesh tui` runs inside itself). The socket is owner-only (mode 0600).
//!
//! The protocol is JSON lines carrying the core's typed API ([`deskmesh_core::api`]):
//!
//! 1. the client sends a [`Hello`] naming [`PROTOCOL`]; the daemon answers `Ok(`[`Welcome`]`)`, or an
//!    error that says which side to upgrade and closes;
//! 2. then each line is a [`deskmesh_core::api::Request`], answered by one line holding
//!    `Result<Response, ApiError>`; an unknown request or an unreadable line gets a protocol error;
//! 3. after `Subscribe` is answered, the connection carries one [`deskmesh_core::view::Event`] per line
//!    until the client hangs up; a subscriber that falls behind gets `Reload` instead of a partial history;
//! 4. `Attach { first, page }` is a subscribe for a front end: its answer is a `Snapshot` holding only the
//!    first `first` spaces in name order (`following` says how many more), and the stream then carries the
//!    rest as `Event::Spaces` pages among the live events, in one order, so a page never undoes a later
//!    change. The TUI's first screen thus waits for 200 spaces, not for a directory of 10,000.
//!
//! A directory answer (`SpacesList`) is the one large answer a command waits for (10 MB of JSON at 10,000
//! spaces, with every signer key in base58). A client that says `binary_answers` in its hello gets it as
//! a binary frame instead of a line: the byte [`FRAME`] (no JSON text starts with it), the body's length
//! (u64, little-endian), then the body, `Result<Response, ApiError>` in CBOR. CBOR keeps field names, so
//! absent optional fields read back as in JSON, and keys and ids travel as bytes. Every other answer, and
//! every answer to a client that did not ask (an older one), is a JSON line.
//!
//! Every line is bounded ([`MAX_REQUEST`] from clients): a longer one is answered with one sentence and the
//! connection closed, never read to its end. [`server`] runs in the daemon; [`client::Remote`] is the
//! [`deskmesh_core::api::Handle`] over it.
//!
//! [`Hello`]: deskmesh_core::api::Hello
//! [`Welcome`]: deskmesh_core::api::Welcome
//! [`PROTOCOL`]: deskmesh_core::api::PROTOCOL

pub mod client;
pub mod server;

pub use client::Remote;

/// The first byte of an answer sent as a binary frame.
pub const FRAME: u8 = 0;

/// Most bytes of one request line. Large imports are sent in batches under this.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// Most bytes of one answer line a client reads (an export of a large directory as a bundle).
pub const MAX_RESPONSE: usize = 1024 * 1024 * 1024;
/// Most bytes of the hello line.
pub const MAX_HELLO: usize = 64 * 1024;
/// Control connections served at once; more are told to try again.
pub const MAX_CONNECTIONS: usize = 64;
/// Events waiting per subscriber before it is told to reload instead.
pub const PUSH_BACKLOG: usize = 1024;
