//! 资助参保: which hardship subsidy a person gets, and who bears it.

use super::convert::{subsidy_amount, tranche_amount};
use super::error::RuleError;
use super::model::{Funding, HardshipGroup, Policy, Ratio};
use ledger::event::{Funder, SubsidyPart};
use ledger::money::split_largest_remainder;
use ledger::{Money, RegionCode};
use std::collections::BTreeMap;

/// The subsidy a person gets for the year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardshipSubsidy {
    /// The group it is granted under (the highest of the person's groups).
    pub group: String,
    pub amount: Money,
    /// Individual standard − subsidy: what the person still pays when the
    /// premium due is the individual part.
    pub person_pays: Money,
}

/// A subsidy shared among its funders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsidySplit {
    /// One part per funder, in [`Funder`] order; zero parts are kept so that
    /// the shape follows the ratio.
    pub parts: Vec<SubsidyPart>,
    /// Money whose funders the policy does not name for this person.
    pub unallocated: Money,
    /// Why, quoting the source where it says (e.g. "按2020年度政府分担比例不变").
    pub unallocated_notes: Vec<String>,
}

impl SubsidySplit {
    pub fn is_complete(&self) -> bool {
        self.unallocated == Money::ZERO
    }

    pub fn total(&self) -> Money {
        let parts: i64 = self.parts.iter().map(|p| p.amount.fen()).sum();
        Money::from_fen(parts + self.unallocated.fen()).unwrap_or(Money::ZERO)
    }
}

impl Policy {
    /// 就高不就低,不重复享受: of the person's hardship groups, the one with the
    /// highest subsidy (ties: the first in the policy's table), never a sum,
    /// and never above the individual standard. `Ok(None)`: no group, or
    /// only groups no longer subsidised.
    pub fn hardship_subsidy<S: AsRef<str>>(&self, groups: &[S]) -> Result<Option<HardshipSubsidy>, RuleError> {
        if groups.is_empty() {
            return Ok(None);
        }
        let table = self
            .hardship
            .as_ref()
            .ok_or(RuleError::NoHardshipTable { region: self.region, coverage_year: self.coverage_year })?;
        let mut best: Option<(usize, Money)> = None;
        for group in groups {
            let group = group.as_ref();
            let index = table.groups.iter().position(|g| g.id == group).ok_or_else(|| RuleError::UnknownGroup {
                group: group.to_string(),
                region: self.region,
                coverage_year: self.coverage_year,
            })?;
            let amount = self.group_subsidy(&table.groups[index]);
            let better = match best {
                None => true,
                Some((best_index, best_amount)) => {
                    amount > best_amount || (amount == best_amount && index < best_index)
                }
            };
            if better {
                best = Some((index, amount));
            }
        }
        Ok(best.filter(|(_, amount)| *amount > Money::ZERO).map(|(index, amount)| HardshipSubsidy {
            group: table.groups[index].id.clone(),
            amount,
            person_pays: self.premium.individual.saturating_sub(amount),
        }))
    }

    /// A group's subsidy in money, capped at the individual standard
    /// (资助数额不超过年度个人缴费标准; validation already refuses more).
    pub fn group_subsidy(&self, group: &HardshipGroup) -> Money {
        subsidy_amount(group.subsidy, self.premium.individual).min(self.premium.individual)
    }

    /// Shares `subsidy` among its funders by the group's tranches; `county`
    /// is the person's county where a ratio depends on its class.
    pub fn split_subsidy(
        &self,
        subsidy: &HardshipSubsidy,
        county: Option<RegionCode>,
    ) -> Result<SubsidySplit, RuleError> {
        let unknown = || RuleError::UnknownGroup {
            group: subsidy.group.clone(),
            region: self.region,
            coverage_year: self.coverage_year,
        };
        let table = self.hardship.as_ref().ok_or_else(unknown)?;
        let group = table.groups.iter().find(|g| g.id == subsidy.group).ok_or_else(unknown)?;
        let mut by_funder: BTreeMap<Funder, i64> = BTreeMap::new();
        let mut unallocated = Money::ZERO;
        let mut unallocated_notes = Vec::new();
        for tranche in &group.tranches {
            let amount = tranche_amount(tranche.amount, self.premium.individual);
            match self.tranche_ratio(&tranche.funding, county) {
                Ok(ratio) => {
                    for part in split_by_ratio(amount, ratio) {
                        *by_funder.entry(part.funder).or_default() += part.amount.fen();
                    }
                }
                Err(note) => {
                    unallocated = unallocated.checked_add(amount).unwrap_or(unallocated);
                    unallocated_notes.push(note);
                }
            }
        }
        let parts = by_funder
            .into_iter()
            .filter_map(|(funder, fen)| Money::from_fen(fen).map(|amount| SubsidyPart { funder, amount }))
            .collect();
        Ok(SubsidySplit { parts, unallocated, unallocated_notes })
    }

    /// The ratio of a tranche for a person in `county`, or why there is none.
    fn tranche_ratio<'p>(&'p self, funding: &'p Funding, county: Option<RegionCode>) -> Result<&'p Ratio, String> {
        match funding {
            Funding::Ratio(ratio) => Ok(ratio),
            Funding::Unstated(note) => Err(note.clone()),
            Funding::ByCountyClass(ratios) => {
                let county = county.ok_or_else(|| "the person's county is not known".to_string())?;
                let class =
                    self.county_class_of(county).ok_or_else(|| format!("county {county} is in no county class"))?;
                ratios
                    .iter()
                    .find(|r| r.county_class == class)
                    .map(|r| &r.ratio)
                    .ok_or_else(|| format!("no ratio for county class `{class}`"))
            }
        }
    }

    /// The id of the county class that lists `county`.
    pub fn county_class_of(&self, county: RegionCode) -> Option<&str> {
        let table = self.hardship.as_ref()?;
        table.county_classes.iter().find(|c| c.counties.iter().any(|k| k.code == county)).map(|c| c.id.as_str())
    }
}

/// Splits `amount` by `ratio` with the largest remainder (最大余额法): the
/// parts sum to `amount` exactly, each within 1 fen of its exact share.
pub fn split_by_ratio(amount: Money, ratio: &Ratio) -> Vec<SubsidyPart> {
    let weights: Vec<u32> = ratio.shares().iter().map(|(_, share)| *share).collect();
    let parts = split_largest_remainder(amount, &weights).expect("a Ratio's shares are positive and the parts fit");
    ratio
        .shares()
        .iter()
        .zip(parts)
        .map(|((funder, _), amount)| SubsidyPart { funder: funder.clone(), amount })
        .collect()
}
