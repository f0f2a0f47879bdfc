//! Keys as people read them: by the role the roster gives each one (a coordinator, a device of a named
//! space, a key removed from one), never as a bare key suffix.

use std::collections::HashMap;

use deskmesh_keys::roster::{RosterState, SpaceEntry};
use deskmesh_keys::{PublicKey, Roster};
use serde::{Deserialize, Serialize};

/// A key and what the roster calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyName {
    pub key: PublicKey,
    /// "coordinator", "device of Casa do Trabalho", "removed device of Casa do Trabalho", "device of
    /// Casa do Trabalho (revoked)", or "a key outside the alliance".
    pub name: String,
}

impl KeyName {
    /// Names `key` by what the roster says of it now.
    pub fn of(roster: Option<&Roster>, key: &PublicKey) -> KeyName {
        Self::in_state(roster.map(Roster::state), key)
    }

    /// Names `key` by the roster's `state` at its heads (`None` outside an alliance).
    pub fn in_state(state: Option<&RosterState>, key: &PublicKey) -> KeyName {
        KeyName {
            key: *key,
            name: name(state, key),
        }
    }

    /// `name (short key)`, for one line of text.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.key.short())
    }
}

fn name(state: Option<&RosterState>, key: &PublicKey) -> String {
    let Some(state) = state else {
        return OUTSIDE.into();
    };
    describe(
        state.is_coordinator(key),
        state.spaces.values().find(|s| s.devices.contains_key(key)),
        || {
            state
                .spaces
                .values()
                .find(|s| s.removed_devices.contains_key(key))
        },
    )
}

const OUTSIDE: &str = "a key outside the alliance";

/// The name of a key that is (or is not) a coordinator, a device of `device`, or else removed from
/// `removed`.
fn describe<'a>(
    coordinator: bool,
    device: Option<&SpaceEntry>,
    removed: impl FnOnce() -> Option<&'a SpaceEntry>,
) -> String {
    let device = device.map(|s| match &s.revoked {
        Some(_) => format!("device of {} (revoked)", s.name),
        None => format!("device of {}", s.name),
    });
    match (coordinator, device) {
        (true, Some(d)) => format!("coordinator, {d}"),
        (true, None) => "coordinator".into(),
        (false, Some(d)) => d,
        (false, None) => removed()
            .map(|s| format!("removed device of {}", s.name))
            .unwrap_or_else(|| OUTSIDE.into()),
    }
}

/// Names many keys against one roster: [`KeyName::of`] finds a key's space by looking through every
/// space, which is quadratic over a roster log or an audit of 10,000 spaces; this indexes the devices
/// once. Names are the same as [`KeyName::of`] gives.
#[derive(Debug)]
pub struct KeyNames<'a> {
    state: Option<&'a RosterState>,
    devices: HashMap<PublicKey, &'a SpaceEntry>,
    removed: HashMap<PublicKey, &'a SpaceEntry>,
}

impl<'a> KeyNames<'a> {
    /// Names against the roster's `state` at its heads (`None` outside an alliance).
    pub fn new(state: Option<&'a RosterState>) -> Self {
        let mut devices = HashMap::new();
        let mut removed = HashMap::new();
        if let Some(state) = state {
            // The first space in id order wins, as the search in `KeyName::of` finds it.
            for space in state.spaces.values() {
                for key in space.devices.keys() {
                    devices.entry(*key).or_insert(space);
                }
                for key in space.removed_devices.keys() {
                    removed.entry(*key).or_insert(space);
                }
            }
        }
        Self {
            state,
            devices,
            removed,
        }
    }

    /// What the roster calls `key`.
    pub fn of(&self, key: &PublicKey) -> KeyName {
        let name = match self.state {
            None => OUTSIDE.into(),
            Some(state) => describe(
                state.is_coordinator(key),
                self.devices.get(key).copied(),
                || self.removed.get(key).copied(),
            ),
        };
        KeyName { key: *key, name }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{self, now};
    use deskmesh_keys::{DeviceKey, Signer};

    #[test]
    fn keys_are_named_by_their_role() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let laptop = DeviceKey::generate().public_key();
        space.add_device(laptop, now()).unwrap();
        let roster = space.roster();
        assert_eq!(
            KeyName::of(roster, &testkit::key_of(&coordinator)).name,
            "coordinator"
        );
        assert_eq!(
            KeyName::of(roster, &testkit::key_of(&space)).name,
            "device of Riverside"
        );
        space.remove_device(laptop, None, now()).unwrap();
        let named = KeyName::of(space.roster(), &laptop);
        assert_eq!(named.name, "removed device of Riverside");
        assert!(named.label().ends_with(&laptop.short()));
        let stranger = DeviceKey::generate().public_key();
        assert_eq!(
            KeyName::of(space.roster(), &stranger).name,
            "a key outside the alliance"
        );
        // The indexed names are the same, key for key.
        let names = KeyNames::new(space.roster().map(Roster::state));
        for key in [
            testkit::key_of(&coordinator),
            testkit::key_of(&space),
            laptop,
            stranger,
        ] {
            assert_eq!(names.of(&key), KeyName::of(space.roster(), &key));
        }
        assert_eq!(KeyNames::new(None).of(&laptop), KeyName::of(None, &laptop));
    }
}
