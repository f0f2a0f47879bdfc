//! The command line over a fake handle: arguments become the typed requests they should, help covers
//! every argument, and results render with data apart from hints.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use clap::CommandFactory;
use deskmesh_core::api::{ApiError, Request, Response, Subscription};
use deskmesh_core::ingest::{ItemKind, SignedItem};
use deskmesh_core::ops::alliance::InviteReport;
use deskmesh_core::ops::listing::{FileFormat, ListingBase};
use deskmesh_keys::{DeviceKey, Hash, Signer, SpaceId};

use super::*;

/// A handle that records what it is asked and answers from a script.
#[derive(Default)]
struct Fake {
    seen: Vec<Request>,
    answers: VecDeque<Result<Response, ApiError>>,
}

impl Handle for Fake {
    fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        self.seen.push(request);
        self.answers
            .pop_front()
            .unwrap_or_else(|| Err(ApiError::unavailable("the fake has no more answers")))
    }
    fn subscribe(&mut self) -> Result<Subscription, ApiError> {
        Ok(Subscription::channel().1)
    }
    fn is_running(&self) -> bool {
        false
    }
}

/// Parses `args` and runs the command against a fake that gives `answer`; returns what it was asked.
fn asked(args: &[&str], answer: Result<Response, ApiError>) -> (Vec<Request>, anyhow::Result<()>) {
    let cli = Cli::try_parse_from(std::iter::once("deskmesh").chain(args.iter().copied())).unwrap();
    let mut fake = Fake {
        answers: VecDeque::from([answer]),
        ..Fake::default()
    };
    let result = request(&mut fake, cli.command);
    (fake.seen, result)
}

fn key() -> deskmesh_keys::PublicKey {
    DeviceKey::from_seed(&[3; 32]).public_key()
}

#[test]
fn every_argument_has_help_and_every_data_command_offers_json() {
    let cmd = Cli::command();
    cmd.clone().debug_assert();
    fn walk(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments() {
            if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            assert!(
                arg.get_help().is_some(),
                "{path} {} has no help line",
                arg.get_id()
            );
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&cmd, "deskmesh");
    for path in [
        &["status"][..],
        &["peers"],
        &["audit"],
        &["alliance", "show"],
        &["alliance", "proposals"],
        &["alliance", "approve"],
        &["alliance", "verify"],
        &["alliance", "replace-device"],
        &["audit", "verify"],
        &["spaces", "list"],
        &["space", "show"],
        &["seats", "set"],
        &["import"],
    ] {
        let mut c = &cmd;
        for p in path {
            c = c.find_subcommand(p).unwrap();
        }
        let json = c.get_arguments().find(|a| a.get_id() == "json").unwrap();
        assert_eq!(
            json.get_help().map(ToString::to_string).as_deref(),
            Some(JSON_HELP),
            "{path:?}"
        );
    }
}

#[test]
fn space_edit_sends_the_files_bytes_and_the_flags_never_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listing.toml");
    std::fs::write(&path, "name = \"From TOML\"\n").unwrap();
    let (seen, _) = asked(
        &[
            "space",
            "edit",
            "--file",
            path.to_str().unwrap(),
            "--name",
            "Renamed",
            "--add-amenity",
            "coffee",
        ],
        Err(ApiError::unavailable("not needed")),
    );
    let Request::SpaceEdit(edit) = &seen[0] else {
        panic!("{seen:?}");
    };
    let Some(ListingBase::File(file)) = &edit.base else {
        panic!("{edit:?}");
    };
    assert_eq!(file.format, FileFormat::Toml);
    assert_eq!(file.bytes.0, b"name = \"From TOML\"\n");
    assert_eq!(edit.fields.name.as_deref(), Some("Renamed"));
    assert_eq!(edit.fields.add_amenities, vec![Amenity::Coffee]);
    // A pipe is refused before anything is sent.
    let fifo = dir.path().join("pipe.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (seen, result) = asked(
        &["space", "edit", "--file", fifo.to_str().unwrap()],
        Err(ApiError::unavailable("not needed")),
    );
    assert!(seen.is_empty());
    assert!(result.unwrap_err().to_string().contains("named pipe"));
}

#[test]
fn seats_list_and_alliance_commands_become_typed_requests() {
    let (seen, _) = asked(
        &["seats", "set", "--pool", "hot", "4", "--ttl", "60"],
        Err(ApiError::unavailable("x")),
    );
    assert_eq!(
        seen,
        vec![Request::SeatsSet {
            pool: Some("hot".into()),
            availability: Availability::Count(4),
            ttl_s: 60
        }]
    );
    let (seen, result) = asked(&["seats", "set", "-3"], Err(ApiError::unavailable("x")));
    assert!(seen.is_empty());
    assert!(result.unwrap_err().to_string().contains("negative"));

    let (seen, _) = asked(
        &[
            "spaces",
            "list",
            "--city",
            "Lisbon",
            "--amenity",
            "coffee",
            "--access",
            "wheelchair",
            "--near",
            "38.7,-9.1",
            "--limit",
            "3",
        ],
        Err(ApiError::unavailable("x")),
    );
    let Request::SpacesList(q) = &seen[0] else {
        panic!("{seen:?}");
    };
    assert_eq!(q.city.as_deref(), Some("Lisbon"));
    assert_eq!(q.amenities, vec![Amenity::Coffee]);
    assert_eq!(q.access, vec![AccessNeed::Wheelchair]);
    assert_eq!(
        q.sort,
        Sort::Distance {
            lat: 38.7,
            lon: -9.1
        }
    );
    assert_eq!(q.limit, Some(3));

    let k = key();
    let (seen, _) = asked(
        &[
            "alliance",
            "invite",
            &k.to_string(),
            "--space",
            "Casa",
            "--peer",
            "/ip4/10.0.0.1/tcp/4717",
        ],
        Ok(Response::Invite(InviteReport {
            token: "dmi1token".into(),
            space: SpaceId::derive(&k),
            invitee: k,
            grant: Hash([0; 32]),
        })),
    );
    assert_eq!(
        seen,
        vec![Request::AllianceInvite {
            invitee: k,
            space_name: "Casa".into(),
            peers: vec!["/ip4/10.0.0.1/tcp/4717".into()]
        }]
    );
}

fn list_query(args: &[&str]) -> anyhow::Result<Query> {
    let mut all = vec!["deskmesh", "spaces", "list"];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).unwrap();
    let Command::Spaces(SpacesCommand::List(list)) = cli.command else {
        panic!("not a list");
    };
    query_from(&list, None)
}

#[test]
fn prices_need_a_currency_and_places_are_points_or_cities() {
    let q = list_query(&["--max-price", "20EUR"]).unwrap();
    assert_eq!(
        (q.max_day_pass_price, q.currency.as_deref()),
        (Some(20.0), Some("EUR"))
    );
    let q = list_query(&["--max-price", "12.5 chf"]).unwrap();
    assert_eq!(
        (q.max_day_pass_price, q.currency.as_deref()),
        (Some(12.5), Some("CHF"))
    );
    let q = list_query(&["--max-price", "15000", "--currency", "ars"]).unwrap();
    assert_eq!(
        (q.max_day_pass_price, q.currency.as_deref()),
        (Some(15000.0), Some("ARS"))
    );
    let err = list_query(&["--max-price", "15"]).unwrap_err().to_string();
    assert!(err.contains("needs a currency: write 15EUR"), "{err}");
    let err = list_query(&["--max-price", "20EUR", "--currency", "USD"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("one currency"), "{err}");
    let err = list_query(&["--max-price", "cheap"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("such as 20EUR"), "{err}");
    let err = list_query(&["--max-price", "20EURO"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ISO 4217"), "{err}");

    let q = list_query(&["--sort", "price", "--currency", "zar"]).unwrap();
    assert_eq!((q.sort, q.currency.as_deref()), (Sort::Price, Some("ZAR")));
    let q = list_query(&["--near", "Lisbon"]).unwrap();
    assert_eq!(q.near_city.as_deref(), Some("Lisbon"));
    let q = list_query(&["--near", " 38.7, -9.1 "]).unwrap();
    assert_eq!(
        q.sort,
        Sort::Distance {
            lat: 38.7,
            lon: -9.1
        }
    );
    let err = list_query(&["--near", "91,0"]).unwrap_err().to_string();
    assert!(err.contains("latitude must be within"), "{err}");
    let err = list_query(&["--near", "38.7,east"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a point"), "{err}");
    let err = list_query(&["--sort", "distance"]).unwrap_err().to_string();
    assert!(err.contains("needs a point"), "{err}");
    // --near alone is resolved by the caller from the saved location.
    let q = list_query(&["--near"]).unwrap();
    assert_eq!(q.sort, Sort::Name);
}

#[test]
fn trust_commands_become_typed_requests() {
    let k = key();
    let other = DeviceKey::from_seed(&[4; 32]).public_key();
    let space = SpaceId::derive(&k);
    let cases: Vec<(Vec<String>, Request)> = vec![
        (
            vec![
                "alliance".into(),
                "revoke".into(),
                space.to_string(),
                "--reason".into(),
                "unpaid dues".into(),
                "--keep-listed".into(),
            ],
            Request::AllianceRevoke {
                space: space.clone(),
                reason: "unpaid dues".into(),
                listed: true,
            },
        ),
        (
            vec![
                "alliance".into(),
                "replace-device".into(),
                k.to_string(),
                other.to_string(),
            ],
            Request::AllianceReplaceDevice {
                old: k,
                new: other,
                space: None,
            },
        ),
        (
            vec![
                "alliance".into(),
                "propose".into(),
                "add-coordinator".into(),
                other.to_string(),
            ],
            Request::AlliancePropose {
                change: CoordinatorChange::Add(other),
            },
        ),
        (
            vec![
                "alliance".into(),
                "propose".into(),
                "threshold".into(),
                "2".into(),
            ],
            Request::AlliancePropose {
                change: CoordinatorChange::Threshold(2),
            },
        ),
        (
            vec!["alliance".into(), "approve".into(), "dmp1abc".into()],
            Request::AllianceApprove {
                proposal: "dmp1abc".into(),
            },
        ),
        (
            vec!["alliance".into(), "proposals".into()],
            Request::AllianceProposals,
        ),
        (
            vec![
                "alliance".into(),
                "verify".into(),
                space.to_string(),
                "--fact".into(),
                "accessibility".into(),
                "--fact".into(),
                "internet.down_mbps".into(),
                "--checked-on".into(),
                "2026-05-01".into(),
            ],
            Request::AllianceVerify {
                space: space.clone(),
                facts: vec!["accessibility".into(), "internet.down_mbps".into()],
                checked_on: chrono::NaiveDate::from_ymd_opt(2026, 5, 1),
                note: String::new(),
            },
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (seen, _) = asked(&args, Err(ApiError::unavailable("x")));
        assert_eq!(seen, vec![expected], "{args:?}");
    }
    let (seen, _) = asked(
        &["spaces", "list", "--verified-only"],
        Err(ApiError::unavailable("x")),
    );
    assert!(matches!(&seen[0], Request::SpacesList(q) if q.verified_only));
    // A token in a file is read here; only its text goes to the node.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.txt");
    std::fs::write(&file, "  dmp1fromafile\n").unwrap();
    let (seen, _) = asked(
        &["alliance", "approve", file.to_str().unwrap()],
        Err(ApiError::unavailable("x")),
    );
    assert_eq!(
        seen,
        vec![Request::AllianceApprove {
            proposal: "dmp1fromafile".into()
        }]
    );
    // A verification needs a fact.
    assert!(Cli::try_parse_from(["deskmesh", "alliance", "verify", space.as_str()]).is_err());
}

#[test]
fn a_bundle_is_imported_in_batches_and_a_listing_file_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = Bundle {
        roster_ops: vec![vec![1; 10]],
        changes: vec![vec![2; IMPORT_BATCH_BYTES], vec![3; 10]],
        beacons: vec![vec![4; 10]],
        ..Bundle::default()
    };
    let path = dir.path().join("b.bundle");
    std::fs::write(&path, bundle.encode().unwrap()).unwrap();
    let cli = Cli::try_parse_from(["deskmesh", "import", path.to_str().unwrap()]).unwrap();
    let report = || Ok(Response::ImportedItems(Default::default()));
    let mut fake = Fake {
        answers: VecDeque::from([report(), report(), report()]),
        ..Fake::default()
    };
    request(&mut fake, cli.command).unwrap();
    let kinds: Vec<Vec<ItemKind>> = fake
        .seen
        .iter()
        .map(|r| match r {
            Request::ImportItems(items) => items.iter().map(|i: &SignedItem| i.kind).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            vec![ItemKind::RosterOp],
            vec![ItemKind::ListingChange],
            vec![ItemKind::ListingChange, ItemKind::SeatBeacon]
        ]
    );

    let json = dir.path().join("listings.json");
    std::fs::write(&json, "[]").unwrap();
    let (seen, _) = asked(
        &["import", json.to_str().unwrap()],
        Err(ApiError::unavailable("x")),
    );
    assert!(matches!(&seen[0], Request::ImportListings(f) if f.bytes.0 == b"[]"));
}

#[test]
fn tokens_are_data_and_what_to_do_next_is_a_hint() {
    let k = key();
    let invite = InviteReport {
        token: "dmi1abc".into(),
        space: SpaceId::derive(&k),
        invitee: k,
        grant: Hash([0; 32]),
    };
    assert_eq!(render::Human::data(&invite), "dmi1abc");
    assert!(render::Human::hint(&invite)
        .unwrap()
        .contains("deskmesh alliance join"));
    let peers = render::Peers(Vec::new());
    assert_eq!(render::Human::data(&peers), "");
    assert_eq!(
        render::Human::hint(&peers).as_deref(),
        Some("no peers connected")
    );
}
