//! A scratch copy of the projection restricted to a few persons: what the
//! batch decision (`family::check_batch`) folds a request's facts into, so
//! that judging a request costs the size of the persons it names, not a
//! copy of every person in the prefecture. Also the region-years whose
//! policy streams a per-person fold reads.

use super::state::{PersonId, PersonState};
use super::Coverage;
use ledger::{Identity, RegionCode};
use rustc_hash::FxHashMap;

impl Coverage {
    /// The policies, the position and the named persons (under every
    /// identity they had, with their proxy applications); everyone else is
    /// left out. For any named person every question answers as on `self`,
    /// also after folding more facts about them; facts about a person left
    /// out would start a new record.
    pub fn subset<'a>(&self, persons: impl IntoIterator<Item = &'a Identity>) -> Coverage {
        let mut renumbered: FxHashMap<PersonId, PersonId> = FxHashMap::default();
        let mut subset = Coverage { tip: self.tip, policies: self.policies.clone(), ..Coverage::default() };
        for identity in persons {
            let Some(id) = self.lookup(identity) else { continue };
            if renumbered.contains_key(&id) {
                continue;
            }
            let Ok(new_id) = PersonId::try_from(subset.persons.len()) else { break };
            let state = &self.persons[id as usize];
            for known in std::iter::once(&state.current).chain(&state.former) {
                subset.ids.insert(known.clone(), new_id);
            }
            subset.persons.push(state.clone());
            renumbered.insert(id, new_id);
        }
        // Every application id stays taken (a second submission under one
        // is ignored, as in the whole); those of persons left out point at
        // one placeholder record that no identity finds.
        let mut placeholder: Option<PersonId> = None;
        for (application, (member, year)) in &self.proxies {
            let new_id = match renumbered.get(&self.live(*member)) {
                Some(&new_id) => new_id,
                None => match placeholder {
                    Some(id) => id,
                    None => {
                        let Ok(id) = PersonId::try_from(subset.persons.len()) else { break };
                        let state = &self.persons[self.live(*member) as usize];
                        subset.persons.push(PersonState::new(state.current.clone()));
                        placeholder = Some(id);
                        id
                    }
                },
            };
            subset.proxies.insert(application.clone(), (new_id, *year));
        }
        subset
    }

    /// Every region-year with a policy in force (their facts are on the
    /// streams `policy/REGION/YEAR`).
    pub fn policy_years(&self) -> Vec<(RegionCode, u16)> {
        self.policies.keys().collect()
    }
}
