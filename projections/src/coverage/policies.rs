//! The policies the coverage projection knows: only those the log carries
//! (PolicyPublished / PolicyAmended; the latest event for a region-year
//! wins), looked up from a person's county to its prefecture to its province.

use crate::policy::Policy;
use ledger::RegionCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One region-year's policy in force, with the document it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyEntry {
    pub policy: Policy,
    pub record: PolicyRecord,
}

/// What is stored of a policy in checkpoints and digests: the document text
/// as the log carried it, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    pub region: RegionCode,
    pub coverage_year: u16,
    pub document: String,
    pub source: String,
    /// Log position of the event in force.
    pub position: u64,
    /// How many amendments (or republications) replaced the first document.
    pub n_amendments: u32,
}

/// Shared behind an `Arc`: a coverage of a few persons read from the
/// person store (the service keeps many, one per cached person) shares
/// one copy of the policies; a fold that installs one copies them first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyBook {
    entries: std::sync::Arc<BTreeMap<(RegionCode, u16), PolicyEntry>>,
}

impl PolicyBook {
    /// Installs a document for its region-year, replacing any earlier one.
    pub fn install(&mut self, policy: Policy, mut record: PolicyRecord) {
        let key = (record.region, record.coverage_year);
        if let Some(earlier) = self.entries.get(&key) {
            record.n_amendments = earlier.record.n_amendments.saturating_add(1);
        }
        std::sync::Arc::make_mut(&mut self.entries).insert(key, PolicyEntry { policy, record });
    }

    /// Re-installs a stored record (checkpoint load), parsing its document.
    pub fn restore(&mut self, record: PolicyRecord) -> Result<(), String> {
        let policy = Policy::from_document(record.region, record.coverage_year, &record.document)
            .map_err(|e| format!("stored policy {}/{}: {e}", record.region, record.coverage_year))?;
        let key = (record.region, record.coverage_year);
        std::sync::Arc::make_mut(&mut self.entries).insert(key, PolicyEntry { policy, record });
        Ok(())
    }

    /// The policy for `region` exactly.
    pub fn exact(&self, region: RegionCode, coverage_year: u16) -> Option<&PolicyEntry> {
        self.entries.get(&(region, coverage_year))
    }

    /// The policy of the county, else of its prefecture (code/100·100), else
    /// of its province (code/10000·10000).
    /// Asked at every question: walks the chain without collecting it.
    pub fn find(&self, region: RegionCode, coverage_year: u16) -> Option<&PolicyEntry> {
        lookup_chain(region).find_map(|code| self.exact(code, coverage_year))
    }

    /// Every region-year with a policy in force.
    pub fn keys(&self) -> impl Iterator<Item = (RegionCode, u16)> + '_ {
        self.entries.keys().copied()
    }

    /// The entries of `coverage_year` for regions in `province`.
    pub fn in_province(&self, province: RegionCode, coverage_year: u16) -> impl Iterator<Item = &PolicyEntry> {
        self.entries
            .iter()
            .filter(move |((region, year), _)| *year == coverage_year && region.province() == province)
            .map(|(_, entry)| entry)
    }

    pub fn records(&self) -> impl Iterator<Item = &PolicyRecord> {
        self.entries.values().map(|entry| &entry.record)
    }
}

/// The region itself, its prefecture and its province, without repeats.
pub(crate) fn lookup_chain(region: RegionCode) -> impl Iterator<Item = RegionCode> {
    let code = region.code();
    let prefecture = RegionCode::new(code / 100 * 100).filter(|parent| *parent != region);
    let province =
        RegionCode::new(code / 10_000 * 10_000).filter(|parent| *parent != region && Some(*parent) != prefecture);
    [Some(region), prefecture, province].into_iter().flatten()
}

/// Whether `person_region` lies in `region`: the same code, or inside it
/// when `region` is a prefecture (ends in 00) or a province (ends in 0000).
pub(crate) fn region_contains(region: RegionCode, person_region: RegionCode) -> bool {
    let (outer, inner) = (region.code(), person_region.code());
    if outer % 10_000 == 0 {
        outer / 10_000 == inner / 10_000
    } else if outer % 100 == 0 {
        outer / 100 == inner / 100
    } else {
        outer == inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: u32) -> RegionCode {
        RegionCode::new(code).expect("test region")
    }

    #[test]
    fn county_then_prefecture_then_province() {
        assert_eq!(
            lookup_chain(region(520502)).collect::<Vec<_>>(),
            vec![region(520502), region(520500), region(520000)]
        );
        assert_eq!(lookup_chain(region(520500)).collect::<Vec<_>>(), vec![region(520500), region(520000)]);
        assert_eq!(lookup_chain(region(140000)).collect::<Vec<_>>(), vec![region(140000)]);
    }

    #[test]
    fn containment_by_prefix() {
        assert!(region_contains(region(520200), region(520203)));
        assert!(region_contains(region(520200), region(520200)));
        assert!(!region_contains(region(520200), region(520502)));
        assert!(region_contains(region(520203), region(520203)));
        assert!(!region_contains(region(520203), region(520204)));
        assert!(region_contains(region(140000), region(140802)));
    }
}
