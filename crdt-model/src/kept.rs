//! Strong removal in the listing model: which of a removed key's changes a removal keeps.
//!
//! A `RemoveDevice` or `RevokeSpace` roster operation names the listing heads it keeps (the heads the
//! remover saw). The roster says which removals constrain a change ([`Authority::removals`]: those not in
//! the causal past of the roster heads the change names); this module answers the other half: is the
//! change in the causal past of the heads a removal keeps? It walks the dependencies of the changes a
//! [`crate::doc::SpaceDoc`] has seen, which are facts: an Automerge change hash covers the change's
//! dependencies, so a change's place in the graph cannot be forged by whoever relays it.
//!
//! [`Authority::removals`]: crate::change::Authority::removals

use std::collections::{HashMap, HashSet};

use deskmesh_keys::roster::Removal;
use deskmesh_keys::{Hash, PublicKey};

use crate::change::ChangeId;

/// What a removal says about one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Every removal that constrains it keeps it.
    Yes,
    /// This removal does not keep it.
    No { by: Hash, revocation: bool },
    /// Whether this removal keeps it depends on a change not seen yet (one of the kept heads or their
    /// past); retry once it arrives.
    Unknown { by: Hash, missing: ChangeId },
}

/// The dependencies of every change seen, for causal-past questions.
#[derive(Debug, Default)]
pub struct ChangeGraph {
    deps: HashMap<ChangeId, Vec<ChangeId>>,
    /// The causal past of a removal's kept heads, as last computed, with the graph size it was computed at
    /// and the first change it could not follow; recomputed when that change may have arrived.
    closures: HashMap<Hash, Closure>,
}

#[derive(Debug)]
struct Closure {
    at_len: usize,
    past: HashSet<ChangeId>,
    missing: Option<ChangeId>,
}

impl ChangeGraph {
    /// Records a change whose hash was verified against its bytes, with its dependencies.
    pub fn add(&mut self, id: ChangeId, deps: Vec<ChangeId>) {
        self.deps.entry(id).or_insert(deps);
    }

    /// Is `change` kept by every one of `removals`?
    pub fn kept(&mut self, change: &ChangeId, removals: &[Removal]) -> Kept {
        for r in removals {
            let len = self.deps.len();
            let stale = match self.closures.get(&r.by) {
                None => true,
                Some(c) => c.missing.is_some() && c.at_len != len,
            };
            if stale {
                let closure = self.closure(&r.keep);
                self.closures.insert(r.by, closure);
            }
            let Some(c) = self.closures.get(&r.by) else {
                continue;
            };
            if c.past.contains(change) {
                continue;
            }
            return match c.missing {
                Some(missing) => Kept::Unknown { by: r.by, missing },
                None => Kept::No {
                    by: r.by,
                    revocation: r.revocation,
                },
            };
        }
        Kept::Yes
    }

    /// Why a change that `by` does not keep is refused, in the words the audit uses.
    pub fn unkept_reason(author: &PublicKey, by: &Hash, revocation: bool) -> String {
        if revocation {
            format!(
                "signed by {author} for a space that roster operation {} revoked, and not part of the listing the revocation keeps",
                by.short()
            )
        } else {
            format!(
                "signed by {author} after roster operation {} removed that key from the space (it names roster heads from before the removal), and not part of the listing the removal keeps",
                by.short()
            )
        }
    }

    /// The causal past of `heads` (themselves included) as far as the graph knows it.
    fn closure(&self, heads: &[ChangeId]) -> Closure {
        let mut past = HashSet::new();
        let mut missing = None;
        let mut stack: Vec<ChangeId> = heads.to_vec();
        while let Some(id) = stack.pop() {
            match self.deps.get(&id) {
                Some(deps) => {
                    if past.insert(id) {
                        stack.extend(deps.iter().copied());
                    }
                }
                None => {
                    missing.get_or_insert(id);
                }
            }
        }
        Closure {
            at_len: self.deps.len(),
            past,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChangeId {
        [n; 32]
    }

    fn removal(n: u8, keep: &[u8]) -> Removal {
        Removal {
            by: Hash::of("test", &[n]),
            revocation: false,
            keep: keep.iter().map(|k| id(*k)).collect(),
        }
    }

    #[test]
    fn a_change_is_kept_when_it_is_in_the_past_of_every_kept_head() {
        let mut g = ChangeGraph::default();
        // 1 <- 2 <- 3, and 4 beside them.
        g.add(id(1), vec![]);
        g.add(id(2), vec![id(1)]);
        g.add(id(3), vec![id(2)]);
        g.add(id(4), vec![id(1)]);
        let r = removal(1, &[3]);
        assert_eq!(g.kept(&id(2), std::slice::from_ref(&r)), Kept::Yes);
        assert_eq!(g.kept(&id(3), std::slice::from_ref(&r)), Kept::Yes);
        assert_eq!(
            g.kept(&id(4), std::slice::from_ref(&r)),
            Kept::No {
                by: r.by,
                revocation: false
            }
        );
        // Two removals: kept only if both keep it.
        let narrow = removal(2, &[1]);
        assert!(matches!(g.kept(&id(2), &[r, narrow]), Kept::No { .. }));
        assert_eq!(g.kept(&id(9), &[]), Kept::Yes);
    }

    #[test]
    fn an_unknown_kept_head_is_waited_for_and_then_known() {
        let mut g = ChangeGraph::default();
        g.add(id(1), vec![]);
        let r = removal(1, &[5]);
        assert_eq!(
            g.kept(&id(1), std::slice::from_ref(&r)),
            Kept::Unknown {
                by: r.by,
                missing: id(5)
            }
        );
        g.add(id(5), vec![id(1)]);
        assert_eq!(g.kept(&id(1), std::slice::from_ref(&r)), Kept::Yes);
        // Keeping nothing keeps nothing.
        let none = removal(3, &[]);
        assert!(matches!(g.kept(&id(1), &[none]), Kept::No { .. }));
    }
}
