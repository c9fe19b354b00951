//! Money of a person-year, and the walk to the day it was paid in full.
//!
//! Money: every contribution (self, another person, a collector, a proxy
//! from a personal account, a subsidy by funder) is a *source*; refunds are
//! matched to the payment they name and never exceed what is left of it (a
//! refund beyond that is an anomaly: noted, counted as `unapplied`, not
//! applied). So `paid.total − refunds.total = net_received` always holds.
//!
//! Settling: money is walked in business-date order; the person-year is
//! paid in full on the first day the net money reaches the premium due *for
//! a payment on that day* (Decision). That day fixes the payment class, the
//! premium due and the first covered day. A later refund that takes the net
//! below it unsettles the year again.

use super::payments::SUBSIDY_CHANNEL;
use super::state::{
    fingerprint, shortfall, Contribution, Destination, Grant, MoneyOutOfRange, ProxyState, Refund, Source, YearState,
    PROXY_CHANNEL,
};
use super::view::{Derivation, Paid, Refunds};
use crate::policy::{funder_key, AmountDue, Ruling};
use ledger::event::Funder;
use ledger::money::split_largest_remainder;
use ledger::{Date, Money};
use std::collections::BTreeMap;

/// Money of a person-year, with refunds matched.
#[derive(Default)]
pub(super) struct Flows {
    pub(super) paid: Paid,
    pub(super) refunds: Refunds,
    /// The person's side net of refunds to channels and accounts.
    pub(super) own_net_fen: i64,
    pub(super) granted_net_fen: i64,
    /// (business date, log position, signed fen), in that order.
    pub(super) timeline: Vec<(Date, u64, i64)>,
    pub(super) in_flight_fen: i64,
    /// Proxy money that failed and went back to the personal account.
    pub(super) proxy_returned_fen: i64,
}

/// The settling day and what was due for it.
#[derive(Clone, Copy)]
pub(super) struct Settlement {
    pub(super) on: Date,
    pub(super) premium_due: Money,
}

/// What the walk found.
pub(super) struct Walk {
    pub(super) settled: Option<Settlement>,
    /// The ruling for the latest money in, if any.
    pub(super) latest: Option<(Date, AmountDue)>,
    /// Every ruling for money in was a refusal.
    pub(super) only_refused: bool,
}

/// Refunds applied, by the side they return money to.
#[derive(Default)]
struct Applied {
    own_fen: i64,
    funders_fen: i64,
}

impl Derivation<'_> {
    /// Sums money by source, matches refunds to what they return, and lays
    /// the money out on a timeline.
    pub(super) fn flows(&mut self) -> Result<Flows, MoneyOutOfRange> {
        let mut flows = Flows::default();
        let Some(year) = self.year else { return Ok(flows) };
        let mut sources = [0i64; 4];
        for c in &year.contributions {
            sources[c.source as usize] = sources[c.source as usize].saturating_add(c.amount.fen());
            flows.timeline.push((c.on, c.position, c.amount.fen()));
        }
        let mut by_funder: BTreeMap<String, i64> = BTreeMap::new();
        let mut granted = 0i64;
        for grant in year.extra().map_or(&[][..], |e| &e.grants) {
            let total = grant.parts.iter().fold(0i64, |sum, (_, amount)| sum.saturating_add(amount.fen()));
            for (funder, amount) in &grant.parts {
                let entry = by_funder.entry(funder_key(funder).to_string()).or_default();
                *entry = entry.saturating_add(amount.fen());
            }
            granted = granted.saturating_add(total);
            flows.timeline.push((grant.on, grant.position, total));
        }
        let own = sources.iter().fold(0i64, |sum, fen| sum.saturating_add(*fen));
        let applied = self.match_refunds(year, &mut flows)?;
        let subsidy = by_funder
            .into_iter()
            .map(|(funder, fen)| {
                let amount = self.amount(fen, || format!("subsidies granted by {funder}"))?;
                Ok((funder, amount))
            })
            .collect::<Result<_, MoneyOutOfRange>>()?;
        flows.paid = Paid {
            by_self: self.amount(sources[Source::Myself as usize], || "paid by self".into())?,
            by_other: self.amount(sources[Source::Other as usize], || "paid by another person".into())?,
            by_collector: self.amount(sources[Source::Collector as usize], || "paid through collectors".into())?,
            by_proxy: self.amount(sources[Source::Proxy as usize], || "paid from personal accounts".into())?,
            subsidy,
            subsidy_total: self.amount(granted, || "subsidies granted".into())?,
            total: self
                .amount(own.saturating_add(granted), || format!("paid ({own} fen own, {granted} fen subsidies)"))?,
        };
        flows.own_net_fen = own - applied.own_fen;
        flows.granted_net_fen = granted - applied.funders_fen;
        let proxies_in = |wanted: fn(ProxyState) -> bool| {
            year.extra().map_or(0, |e| {
                e.proxies.iter().filter(|p| wanted(p.status)).fold(0i64, |sum, p| sum.saturating_add(p.amount.fen()))
            })
        };
        flows.in_flight_fen = proxies_in(ProxyState::in_flight);
        flows.proxy_returned_fen = proxies_in(|state| state == ProxyState::Returned);
        flows.timeline.sort_unstable();
        Ok(flows)
    }

    /// Sums the refunds [`apply_refunds`] applied, by destination (and the
    /// refunds to funders by funder: each back to the funders of the grants
    /// it names), notes those it could not apply whole, and puts them on
    /// the timeline.
    fn match_refunds(&mut self, year: &YearState, flows: &mut Flows) -> Result<Applied, MoneyOutOfRange> {
        let mut applied = Applied::default();
        let mut by_destination = [0i64; 3];
        let mut unapplied = 0i64;
        let mut to_funders_fen = 0i64;
        let refunds = year.extra().map_or(&[][..], |e| &e.refunds);
        let refunds_applied = apply_refunds(year);
        for (refund, taken) in refunds.iter().zip(&refunds_applied.refunds) {
            let (wanted, take) = (refund.amount.fen(), taken.taken_fen);
            match taken.target {
                RefundTarget::Grants => {
                    applied.funders_fen = applied.funders_fen.saturating_add(take);
                    to_funders_fen = to_funders_fen.saturating_add(take);
                }
                RefundTarget::Contribution(index) => {
                    self.note_destination(&year.contributions[index], refund);
                    applied.own_fen = applied.own_fen.saturating_add(take);
                }
                RefundTarget::Nothing => {}
            }
            if take < wanted {
                self.note_unapplied(refund, take)?;
            }
            unapplied = unapplied.saturating_add(wanted - take);
            let slot = &mut by_destination[refund.destination as usize];
            *slot = slot.saturating_add(take);
            if take > 0 {
                flows.timeline.push((refund.on, refund.position, -take));
            }
        }
        let total = by_destination.iter().fold(0i64, |sum, fen| sum.saturating_add(*fen));
        let to_funders = self.amount(to_funders_fen, || "refunded to funders".into())?;
        flows.refunds = Refunds {
            to_channel: self.amount(by_destination[Destination::Channel as usize], || "refunded to channels".into())?,
            to_personal_account: self.amount(by_destination[Destination::PersonalAccount as usize], || {
                "refunded to personal accounts".into()
            })?,
            to_funders,
            to_funders_by_funder: self.refunded_by_funder(year, &refunds_applied)?,
            total: self.amount(total, || "refunds applied".into())?,
            unapplied: self.amount(unapplied, || "refunds not applied".into())?,
        };
        Ok(applied)
    }

    /// 资助退回 by funder: what the refunds took back of each funder's own
    /// parts of the grants.
    fn refunded_by_funder(
        &self,
        year: &YearState,
        applied: &RefundsApplied,
    ) -> Result<BTreeMap<String, Money>, MoneyOutOfRange> {
        refunded_by_funder(year, applied)
            .into_iter()
            .map(|(funder, fen)| Ok((funder.clone(), self.amount(fen, || format!("refunded to {funder}"))?)))
            .collect()
    }

    fn note_destination(&mut self, payment: &Contribution, refund: &Refund) {
        let from_account = payment.source == Source::Proxy;
        let to_account = refund.destination == Destination::PersonalAccount;
        if from_account != to_account {
            self.notes.add(|| {
                format!(
                    "refund {} goes to {:?} but payment {}/{} came from {}: money goes back where it came from",
                    refund.refund_ref,
                    refund.destination,
                    refund.channel,
                    refund.channel_ref,
                    if from_account { "a personal account" } else { "a channel" }
                )
            });
        }
    }

    fn note_unapplied(&mut self, refund: &Refund, taken: i64) -> Result<(), MoneyOutOfRange> {
        let applied = self.amount(taken, || format!("refund {} applied", refund.refund_ref))?;
        let not_applied = shortfall(refund.amount.fen(), taken);
        self.notes.add(|| {
            let what = if refund.destination == Destination::Funders {
                format!("the subsidies it names ({}/{})", refund.channel, refund.channel_ref)
            } else {
                format!("payment {}/{}", refund.channel, refund.channel_ref)
            };
            format!(
                "anomaly: refund {} of {} exceeds what is left of {what}; {} applied, {} not applied",
                refund.refund_ref, refund.amount, applied, not_applied
            )
        });
        Ok(())
    }

    /// Walks money in date order to the settling day (see the module doc).
    pub(super) fn walk(&mut self, timeline: &[(Date, u64, i64)]) -> Result<Walk, MoneyOutOfRange> {
        let mut walk = Walk { settled: None, latest: None, only_refused: false };
        let (mut running, mut n_in, mut n_refused) = (0i64, 0u32, 0u32);
        for &(on, _, fen) in timeline {
            running = running.saturating_add(fen);
            if fen < 0 {
                if walk.settled.is_some_and(|s| running < s.premium_due.fen()) {
                    walk.settled = None;
                }
                continue;
            }
            let due = self.premium_due_on(on);
            n_in = n_in.saturating_add(1);
            if let Ruling::Refused { reason } = due {
                n_refused = n_refused.saturating_add(1);
                let coverage_year = self.coverage_year;
                let amount = self.amount(fen, || format!("money of {on}"))?;
                self.notes.add(|| format!("money of {on} ({amount}) cannot buy {coverage_year}: {reason}"));
            }
            if let (None, Ruling::Known(amount)) = (walk.settled, due) {
                if running >= amount.fen() {
                    walk.settled = Some(Settlement { on, premium_due: amount });
                }
            }
            walk.latest = Some((on, due));
        }
        walk.only_refused = n_in > 0 && n_in == n_refused;
        Ok(walk)
    }
}

/// What a refund was applied against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RefundTarget {
    /// The contribution at this index of the year's.
    Contribution(usize),
    /// The year's subsidies (a refund to funders).
    Grants,
    /// Nothing of the year: the refund names no payment it has.
    Nothing,
}

/// One refund as applied.
#[derive(Clone, Copy, Debug)]
pub(super) struct AppliedRefund {
    pub(super) target: RefundTarget,
    /// Never more than what was left of the target.
    pub(super) taken_fen: i64,
}

impl AppliedRefund {
    /// The amount taken: the least of two amounts, so an amount itself.
    pub(super) fn taken(&self) -> Money {
        debug_assert!((0..=Money::MAX_FEN).contains(&self.taken_fen), "{self:?}");
        Money::from_fen(self.taken_fen).unwrap_or(Money::ZERO)
    }
}

/// The refunds of a year as applied, and what they left of the grants.
pub(super) struct RefundsApplied {
    /// One entry per refund, in log order.
    pub(super) refunds: Vec<AppliedRefund>,
    /// Per grant, per part (as in `Grant::parts`): the fen the refunds to
    /// funders left of it. Never below zero, never above the part.
    pub(super) grant_parts_left: Vec<Vec<i64>>,
}

impl RefundsApplied {
    /// What the refunds took back of the grants at `indices`.
    pub(super) fn refunded_of(&self, year: &YearState, indices: &[usize]) -> i64 {
        let grants = year.extra().map_or(&[][..], |e| &e.grants);
        indices.iter().fold(0i64, |total, &index| {
            let granted = grants[index].parts.iter().map(|(_, amount)| amount.fen());
            let left = self.grant_parts_left[index].iter();
            granted.zip(left).fold(total, |total, (part, left)| total.saturating_add(part - left))
        })
    }
}

/// Applies each refund of the year, in log order, against the payment it
/// names (or, for refunds to funders, the grants it names: see
/// [`named_grants`]), never beyond what is left of it. The figures and the
/// decision to record a refund (`Coverage::refund_target`) both come from
/// here.
pub(super) fn apply_refunds(year: &YearState) -> RefundsApplied {
    let mut left: Vec<i64> = year.contributions.iter().map(|c| c.amount.fen()).collect();
    let grants = year.extra().map_or(&[][..], |e| &e.grants);
    let mut grant_parts_left: Vec<Vec<i64>> =
        grants.iter().map(|g| g.parts.iter().map(|(_, amount)| amount.fen()).collect()).collect();
    let refunds = year.extra().map_or(&[][..], |e| &e.refunds);
    let mut applied = Vec::with_capacity(refunds.len());
    for refund in refunds {
        let wanted = refund.amount.fen();
        let (target, taken_fen) = match refund.destination {
            Destination::Funders => {
                let named = (*refund.channel == *SUBSIDY_CHANNEL)
                    .then(|| named_grants(grants, &refund.channel_ref))
                    .flatten()
                    // 资助退回 that names no grant of the year: the year's
                    // grants as a whole, as before grants could be named.
                    .unwrap_or_else(|| (0..grants.len()).collect());
                (RefundTarget::Grants, take_from_grants(grants, &named, &mut grant_parts_left, wanted))
            }
            _ => match find_payment(&year.contributions, &refund.channel, &refund.channel_ref) {
                Some(index) => {
                    let take = wanted.min(left[index]);
                    left[index] -= take;
                    (RefundTarget::Contribution(index), take)
                }
                None => (RefundTarget::Nothing, 0),
            },
        };
        applied.push(AppliedRefund { target, taken_fen });
    }
    RefundsApplied { refunds: applied, grant_parts_left }
}

/// The grants of the year a refund to funders names by its reference
/// (`subsidy:REFERENCE`), as indices into `grants`; `None` when it names
/// none of them.
///
/// * `GROUP@POSITION`: the one grant of that group recorded at that log
///   position (a year may hold several grants of one group).
/// * `GROUP`, or `GROUP-…`: every grant of that group this year (the
///   longest group that matches, so `a-b` is group `a-b` before `a`).
pub(crate) fn named_grants(grants: &[Grant], reference: &str) -> Option<Vec<usize>> {
    let by_position = reference.rsplit_once('@').and_then(|(group, position)| {
        let position: u64 = position.parse().ok()?;
        grants.iter().position(|g| g.position == position && *g.group == *group)
    });
    if let Some(index) = by_position {
        return Some(vec![index]);
    }
    let names =
        |group: &str| reference == group || reference.strip_prefix(group).is_some_and(|rest| rest.starts_with('-'));
    let group = grants.iter().map(|g| &*g.group).filter(|group| names(group)).max_by_key(|group| group.len())?;
    Some(grants.iter().enumerate().filter(|(_, g)| *g.group == *group).map(|(index, _)| index).collect())
}

/// Takes up to `wanted_fen` from what is left of the grants at `named`, and
/// returns what it took. The money goes back to those grants' own funders
/// only: split among the funders in proportion to what is left of each
/// one's parts (largest remainder, so the shares sum to the fen taken, and
/// no share exceeds what is left of that funder's parts), then within a
/// funder from its parts in grant order.
fn take_from_grants(grants: &[Grant], named: &[usize], parts_left: &mut [Vec<i64>], wanted_fen: i64) -> i64 {
    let mut funders: Vec<(&Funder, i64)> = Vec::new();
    for &index in named {
        for ((funder, _), &left) in grants[index].parts.iter().zip(&parts_left[index]) {
            match funders.iter_mut().find(|(known, _)| *known == funder) {
                Some((_, total)) => *total = total.saturating_add(left),
                None => funders.push((funder, left)),
            }
        }
    }
    let available = funders.iter().fold(0i64, |total, (_, left)| total.saturating_add(*left));
    let take = wanted_fen.clamp(0, available);
    let shares = split_by_left(take, &funders);
    for ((funder, _), mut share) in funders.iter().zip(shares) {
        for &index in named {
            for ((part_funder, _), left) in grants[index].parts.iter().zip(parts_left[index].iter_mut()) {
                if part_funder == *funder && share > 0 {
                    let from_part = share.min(*left);
                    *left -= from_part;
                    share -= from_part;
                }
            }
        }
    }
    take
}

/// `take_fen` (at most the sum of what is left) shared by what is left of
/// each funder, by largest remainder. Shares that do not fit the split's
/// weights (a part beyond 42 million yuan) are taken in order instead.
fn split_by_left(take_fen: i64, funders: &[(&Funder, i64)]) -> Vec<i64> {
    let weights: Option<Vec<u32>> = funders.iter().map(|(_, left)| u32::try_from(*left).ok()).collect();
    let split =
        Money::from_fen(take_fen).zip(weights).and_then(|(take, weights)| split_largest_remainder(take, &weights));
    match split {
        Some(parts) => parts.into_iter().map(Money::fen).collect(),
        None if take_fen == 0 => vec![0; funders.len()],
        None => {
            let mut rest = take_fen;
            funders
                .iter()
                .map(|(_, left)| {
                    let share = rest.min(*left);
                    rest -= share;
                    share
                })
                .collect()
        }
    }
}

/// 资助退回 by funder: what the refunds took back of each funder's parts.
fn refunded_by_funder(year: &YearState, applied: &RefundsApplied) -> BTreeMap<String, i64> {
    let mut refunded: BTreeMap<String, i64> = BTreeMap::new();
    let grants = year.extra().map_or(&[][..], |e| &e.grants);
    for (grant, left) in grants.iter().zip(&applied.grant_parts_left) {
        for ((funder, amount), left) in grant.parts.iter().zip(left) {
            if amount.fen() > *left {
                let entry = refunded.entry(funder_key(funder).to_string()).or_default();
                *entry = entry.saturating_add(amount.fen() - left);
            }
        }
    }
    refunded
}

/// The contribution a refund names: by (channel, reference), or a proxy
/// payment by its application id.
pub(super) fn find_payment(contributions: &[Contribution], channel: &str, reference: &str) -> Option<usize> {
    let direct = fingerprint(channel, reference);
    let proxy = fingerprint(PROXY_CHANNEL, reference);
    contributions
        .iter()
        .position(|c| c.fingerprint == direct)
        .or_else(|| contributions.iter().position(|c| c.source == Source::Proxy && c.fingerprint == proxy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(group: &str, position: u64) -> Grant {
        let on = "2020-12-01".parse().expect("a date");
        Grant { group: group.into(), parts: vec![(Funder::County, Money::ZERO)], on, position }
    }

    /// A reference names a group's grants (the longest group it names), or
    /// one grant by its log position; anything else names none.
    #[test]
    fn a_refund_names_a_group_or_one_grant_by_position() {
        let grants = [grant("a", 4), grant("a-b", 5), grant("a", 7), grant("x@4", 9)];
        assert_eq!(named_grants(&grants, "a"), Some(vec![0, 2]));
        assert_eq!(named_grants(&grants, "a-R1"), Some(vec![0, 2]));
        assert_eq!(named_grants(&grants, "a-b"), Some(vec![1]));
        assert_eq!(named_grants(&grants, "a-b-R1"), Some(vec![1]));
        assert_eq!(named_grants(&grants, "a@7"), Some(vec![2]));
        assert_eq!(named_grants(&grants, "x@4"), Some(vec![3]), "a group with @ in its name");
        assert_eq!(named_grants(&grants, "a@5"), None, "position 5 is not a grant of a");
        assert_eq!(named_grants(&grants, "ab"), None);
        assert_eq!(named_grants(&grants, "b"), None);
    }
}
