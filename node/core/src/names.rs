//! Keys as people read them: by the role the roster gives each one (a coordinator, a device of a named
//! space, a key removed from one), never as a bare key suffix.

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
        KeyName {
            key: *key,
            name: name(roster, key),
        }
    }

    /// `name (short key)`, for one line of text.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.key.short())
    }
}

fn name(roster: Option<&Roster>, key: &PublicKey) -> String {
    let Some(roster) = roster else {
        return "a key outside the alliance".into();
    };
    let state = roster.state();
    let coordinator = state.is_coordinator(key);
    let device = state
        .spaces
        .values()
        .find(|s| s.devices.contains_key(key))
        .map(|s| match &s.revoked {
            Some(_) => format!("device of {} (revoked)", s.name),
            None => format!("device of {}", s.name),
        });
    let removed = || {
        state
            .spaces
            .values()
            .find(|s| s.removed_devices.contains_key(key))
            .map(|s| format!("removed device of {}", s.name))
    };
    match (coordinator, device) {
        (true, Some(d)) => format!("coordinator, {d}"),
        (true, None) => "coordinator".into(),
        (false, Some(d)) => d,
        (false, None) => removed().unwrap_or_else(|| "a key outside the alliance".into()),
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
    }
}
