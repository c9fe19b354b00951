//! 资助退回: a refund of a subsidy goes back to the funders of the grants it
//! names, in those grants' split, and to no other funder. Laws over random
//! grants and refunds of one person-year: each funder's net is what it
//! granted less what was refunded of its own grants, never below zero.

mod common;

use common::envelope;
use common::subsidy::{grant, money, person, refund, registered, YEAR};
use ledger::event::{Event, Funder};
use ledger::Money;
use projections::coverage::{Coverage, PersonYear};
use projections::Projection;
use proptest::prelude::*;
use std::collections::BTreeMap;

const GROUPS: [&str; 3] = ["registered_poor", "orphan", "family_planning"];

/// The person-year after folding `events` at positions 1, 2, …
fn view(events: &[Event]) -> PersonYear {
    let mut coverage = Coverage::default();
    for (index, event) in events.iter().enumerate() {
        coverage.apply(&envelope(index as u64 + 1, event.clone()));
    }
    coverage.person_year(&person(), YEAR).expect("every figure is money").expect("the person-year")
}

fn fen_of(map: &BTreeMap<String, Money>, funder: &str) -> i64 {
    map.get(funder).map_or(0, |m| m.fen())
}

/// Each funder's net is what it granted less what went back to it, and
/// never below zero; the refunds by funder sum to the refunds to funders.
fn check_funders(view: &PersonYear) -> Result<(), TestCaseError> {
    let (granted, refunded) = (&view.paid.subsidy, &view.refunds.to_funders_by_funder);
    for (funder, amount) in refunded {
        prop_assert!(*amount <= granted.get(funder).copied().unwrap_or(Money::ZERO), "{funder}: {view:?}");
    }
    prop_assert_eq!(refunded.values().map(|m| m.fen()).sum::<i64>(), view.refunds.to_funders.fen());
    prop_assert!(view.refunds.to_funders <= view.paid.subsidy_total);
    Ok(())
}

/// The funders of each group: no funder pays for two groups, so what went
/// back to a group's funders is what was refunded of that group's grants.
fn own_funders(group: usize) -> Vec<Funder> {
    match group {
        0 => vec![Funder::Province, Funder::City, Funder::County],
        1 => vec![Funder::MedicalAssistanceFund],
        _ => vec![Funder::Other("计生协会".into()), Funder::Other("慈善总会".into())],
    }
}

fn key(funder: &Funder) -> String {
    projections::policy::funder_key(funder).to_string()
}

/// A grant: its group and each part's share (of the group's funders).
fn grants() -> impl Strategy<Value = Vec<(usize, Vec<i64>)>> {
    proptest::collection::vec((0usize..3, proptest::collection::vec(0i64..30_000, 3)), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Refunds naming a group (`subsidy:GROUP`, `subsidy:GROUP-…`): the
    /// group's funders get back exactly what was refunded of the group's
    /// grants (at most what they granted), the other funders nothing.
    #[test]
    fn a_refund_goes_back_to_the_funders_of_the_grants_it_names(
        grants in grants(),
        refunds in proptest::collection::vec((0usize..3, any::<bool>(), 1i64..40_000), 0..8),
    ) {
        let mut events = vec![registered()];
        let mut granted_by_group = [0i64; 3];
        for (group, shares) in &grants {
            let parts: Vec<(Funder, i64)> = own_funders(*group)
                .into_iter()
                .zip(shares)
                .map(|(funder, fen)| (funder, *fen + 1))
                .collect();
            granted_by_group[*group] += parts.iter().map(|(_, fen)| fen).sum::<i64>();
            events.push(grant(GROUPS[*group], &parts));
        }
        let present: Vec<usize> = (0..3).filter(|g| granted_by_group[*g] > 0).collect();
        let mut taken_by_group = [0i64; 3];
        let mut unapplied = 0i64;
        for (index, (pick, suffixed, fen)) in refunds.iter().enumerate() {
            let group = present[pick % present.len()];
            let take = (*fen).min(granted_by_group[group] - taken_by_group[group]);
            taken_by_group[group] += take;
            unapplied += fen - take;
            let reference =
                if *suffixed { format!("{}-R{index}", GROUPS[group]) } else { GROUPS[group].to_string() };
            events.push(refund(index, reference, *fen));
        }
        let view = view(&events);
        check_funders(&view)?;
        for group in 0..3 {
            let back: i64 =
                own_funders(group).iter().map(|f| fen_of(&view.refunds.to_funders_by_funder, &key(f))).sum();
            prop_assert_eq!(back, taken_by_group[group], "group {}: {:?}", GROUPS[group], view.refunds);
            for funder in own_funders(group) {
                let net = fen_of(&view.paid.subsidy, &key(&funder))
                    - fen_of(&view.refunds.to_funders_by_funder, &key(&funder));
                prop_assert!(net >= 0, "{}: {net}", key(&funder));
            }
        }
        prop_assert_eq!(view.refunds.unapplied.fen(), unapplied);
    }

    /// Funders shared between groups, refunds naming a group, one grant
    /// (`GROUP@POSITION`) or nothing the year holds: no funder ever gets
    /// back more than it granted, and a refund naming one grant takes only
    /// from that grant.
    #[test]
    fn no_funder_gets_back_more_than_it_granted(
        grants in proptest::collection::vec((0usize..3, proptest::collection::vec((0usize..5, 1i64..30_000), 1..4)), 1..6),
        refunds in proptest::collection::vec((0u8..3, 0usize..8, 1i64..40_000), 0..8),
    ) {
        let funders = [Funder::Province, Funder::City, Funder::County, Funder::MedicalAssistanceFund, Funder::Other("慈善总会".into())];
        let mut events = vec![registered()];
        let mut granted_positions: Vec<(u64, usize, i64)> = Vec::new();
        for (group, parts) in &grants {
            let mut parts: Vec<(Funder, i64)> = parts.iter().map(|(f, fen)| (funders[*f].clone(), *fen)).collect();
            parts.sort_by(|a, b| a.0.cmp(&b.0));
            parts.dedup_by(|a, b| a.0 == b.0);
            let total = parts.iter().map(|(_, fen)| fen).sum();
            events.push(grant(GROUPS[*group], &parts));
            granted_positions.push((events.len() as u64, *group, total));
        }
        let mut named_positions = Vec::new();
        for (index, (form, pick, fen)) in refunds.iter().enumerate() {
            let (position, group, _) = granted_positions[pick % granted_positions.len()];
            let reference = match form {
                0 => GROUPS[group].to_string(),
                1 => format!("{}@{position}", GROUPS[group]),
                _ => "nobody".to_string(),
            };
            named_positions.push(position);
            events.push(refund(index, reference, *fen));
        }
        let view = view(&events);
        check_funders(&view)?;
        // Every refund names the same one grant: only its money goes back.
        let by_position = refunds.iter().all(|(form, _, _)| *form == 1);
        if let (true, Some(&first)) = (by_position, named_positions.first()) {
            if named_positions.iter().all(|p| *p == first) {
                let total = granted_positions.iter().find(|(p, _, _)| *p == first).map_or(0, |g| g.2);
                let wanted: i64 = refunds.iter().map(|(_, _, fen)| fen).sum();
                prop_assert_eq!(view.refunds.to_funders.fen(), wanted.min(total));
            }
        }
    }
}

/// A person-year with a 建档立卡 grant split province : city : county and
/// an orphan's grant paid by the medical assistance fund: refunding the
/// orphan grant returns all of it to the fund and nothing to the others.
#[test]
fn refunding_one_groups_grant_leaves_the_other_groups_funders_alone() {
    let events = vec![
        registered(),
        grant(GROUPS[0], &[(Funder::Province, 1000), (Funder::City, 400), (Funder::County, 600)]),
        grant(GROUPS[1], &[(Funder::MedicalAssistanceFund, 28_000)]),
        refund(0, GROUPS[1].into(), 28_000),
        refund(1, format!("{}@2", GROUPS[0]), 1001),
    ];
    let view = view(&events);
    let back = &view.refunds.to_funders_by_funder;
    assert_eq!(fen_of(back, "medical_assistance_fund"), 28_000, "{back:?}");
    // 1001 of the 5:2:3 grant, by largest remainder: 500.5, 200.2, 300.3.
    assert_eq!((fen_of(back, "province"), fen_of(back, "city"), fen_of(back, "county")), (501, 200, 300), "{back:?}");
    assert_eq!(view.refunds.to_funders, money(29_001));
}

/// A refund to funders whose reference names no grant of the year (an
/// older log may hold one) keeps its old meaning: taken from all the year's
/// grants, in their split.
#[test]
fn a_refund_naming_no_grant_is_taken_from_all_the_years_grants() {
    let events = vec![
        registered(),
        grant(GROUPS[0], &[(Funder::Province, 30_000)]),
        grant(GROUPS[1], &[(Funder::MedicalAssistanceFund, 10_000)]),
        refund(0, "R1".into(), 10_000),
    ];
    let view = view(&events);
    let back = &view.refunds.to_funders_by_funder;
    assert_eq!((fen_of(back, "province"), fen_of(back, "medical_assistance_fund")), (7_500, 2_500), "{back:?}");
    assert_eq!(view.refunds.unapplied, Money::ZERO);
}
