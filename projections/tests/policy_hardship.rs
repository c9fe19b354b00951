//! 资助参保: the highest group wins, never a sum; splits among funders sum
//! exactly to the fen.

use ledger::event::{Funder, SubsidyPart};
use ledger::{Money, RegionCode};
use projections::policy::{split_by_ratio, HardshipSubsidy, Policy, Ratio, RuleError, MAX_RATIO_TOTAL};
use proptest::prelude::*;
use std::path::PathBuf;

fn load(name: &str) -> Policy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/policies").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Policy::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yuan(text: &str) -> Money {
    text.parse().expect("test amount")
}

fn region(text: &str) -> RegionCode {
    text.parse().expect("test region")
}

fn part(funder: Funder, amount: &str) -> SubsidyPart {
    SubsidyPart { funder, amount: yuan(amount) }
}

fn subsidy(policy: &Policy, groups: &[&str]) -> Option<HardshipSubsidy> {
    policy.hardship_subsidy(groups).expect("known groups")
}

fn five_two_three() -> Ratio {
    Ratio::new(vec![(Funder::Province, 5), (Funder::City, 2), (Funder::County, 3)]).expect("5:2:3")
}

#[test]
fn shanxi_2022_subsidies_and_what_the_person_pays() {
    let p = load("shanxi-2022.toml");
    let cases: &[(&str, &str, &str)] = &[
        ("at_risk_of_poverty", "280", "40"),
        ("fell_back_into_poverty", "288", "32"),
        ("extreme_poverty", "320", "0"),
        ("minimum_living_allowance", "280", "40"),
    ];
    for (group, amount, person_pays) in cases {
        let got = subsidy(&p, &[group]).expect("subsidised");
        assert_eq!((got.group.as_str(), got.amount, got.person_pays), (*group, yuan(amount), yuan(person_pays)));
    }
    assert_eq!(subsidy(&p, &["stably_out_of_poverty"]), None, "不再享受资助");
    assert_eq!(subsidy(&p, &[]), None);
}

#[test]
fn the_highest_group_wins_never_the_sum() {
    let p = load("shanxi-2022.toml");
    let got = subsidy(&p, &["minimum_living_allowance", "fell_back_into_poverty"]).expect("subsidised");
    assert_eq!((got.group.as_str(), got.amount), ("fell_back_into_poverty", yuan("288")));
    let got = subsidy(&p, &["stably_out_of_poverty", "extreme_poverty", "at_risk_of_poverty"]).expect("subsidised");
    assert_eq!((got.group.as_str(), got.amount, got.person_pays), ("extreme_poverty", yuan("320"), Money::ZERO));
    // Equal subsidies: the first in the policy's table, whatever the order given.
    for groups in
        [["minimum_living_allowance", "at_risk_of_poverty"], ["at_risk_of_poverty", "minimum_living_allowance"]]
    {
        assert_eq!(subsidy(&p, &groups).expect("subsidised").group, "at_risk_of_poverty");
    }
    let p = load("liupanshui-2021.toml");
    let got = subsidy(&p, &["registered_poor", "orphan"]).expect("subsidised");
    assert_eq!((got.group.as_str(), got.amount), ("orphan", yuan("280")));
    let got = subsidy(&p, &["orphan", "registered_poor", "orphan"]).expect("subsidised");
    assert_eq!(got.amount, yuan("280"), "capped at the individual standard, never 280 + 140");
}

#[test]
fn unknown_groups_and_missing_tables_are_errors() {
    let p = load("shanxi-2022.toml");
    assert!(matches!(
        p.hardship_subsidy(&["low_income_family"]),
        Err(RuleError::UnknownGroup { ref group, .. }) if group == "low_income_family"
    ));
    let bijie = load("bijie-2025.toml");
    assert!(matches!(bijie.hardship_subsidy(&["orphan"]), Err(RuleError::NoHardshipTable { coverage_year: 2025, .. })));
    assert_eq!(bijie.hardship_subsidy::<&str>(&[]), Ok(None));
}

#[test]
fn liupanshui_registered_poor_twenty_yuan_by_county_class() {
    let p = load("liupanshui-2021.toml");
    let poor = subsidy(&p, &["registered_poor"]).expect("subsidised");
    assert_eq!((poor.amount, poor.person_pays), (yuan("140"), yuan("140")));
    for county in ["520203", "520281", "520221"] {
        let split = p.split_subsidy(&poor, Some(region(county))).expect("split");
        assert_eq!(
            split.parts,
            vec![part(Funder::Province, "10"), part(Funder::City, "4"), part(Funder::County, "6")],
            "{county}: 5:2:3 of the added 20"
        );
        assert_eq!(split.unallocated, yuan("120"), "120元按2020年度政府分担比例不变: not in this source");
        assert!(split.unallocated_notes[0].contains("2020"));
        assert!(!split.is_complete());
        assert_eq!(split.total(), yuan("140"));
    }
    let zhongshan = p.split_subsidy(&poor, Some(region("520201"))).expect("split");
    assert_eq!(zhongshan.parts, vec![part(Funder::County, "20")], "钟山区: the county alone");
    let unknown_county = p.split_subsidy(&poor, None).expect("split");
    assert!(unknown_county.parts.is_empty());
    assert_eq!((unknown_county.unallocated, unknown_county.unallocated_notes.len()), (yuan("140"), 2));
    let elsewhere = p.split_subsidy(&poor, Some(region("520299"))).expect("split");
    assert_eq!(elsewhere.unallocated, yuan("140"));
}

#[test]
fn liupanshui_full_subsidies_and_their_funders() {
    let p = load("liupanshui-2021.toml");
    let county_alone = subsidy(&p, &["family_planning_special"]).expect("subsidised");
    assert_eq!((county_alone.amount, county_alone.person_pays), (yuan("280"), Money::ZERO));
    let split = p.split_subsidy(&county_alone, None).expect("split");
    assert_eq!(split.parts, vec![part(Funder::County, "280")]);
    assert!(split.is_complete());
    let orphan = subsidy(&p, &["orphan"]).expect("subsidised");
    let split = p.split_subsidy(&orphan, Some(region("520201"))).expect("split");
    assert_eq!(split.parts, vec![part(Funder::MedicalAssistanceFund, "280")]);
    // Two full subsidies: the first listed (county finance) is granted.
    let both = subsidy(&p, &["orphan", "family_planning_special"]).expect("subsidised");
    assert_eq!(both.group, "family_planning_special");
}

#[test]
fn shanxi_funders_are_not_named() {
    let p = load("shanxi-2022.toml");
    let at_risk = subsidy(&p, &["at_risk_of_poverty"]).expect("subsidised");
    let split = p.split_subsidy(&at_risk, None).expect("split");
    assert!(split.parts.is_empty());
    assert_eq!(split.unallocated, yuan("280"));
    assert_eq!(split.unallocated_notes, vec!["按原有渠道办理".to_string()]);
}

#[test]
fn five_two_three_of_odd_fen() {
    let fen = |parts: Vec<SubsidyPart>| parts.iter().map(|p| p.amount.fen()).collect::<Vec<i64>>();
    let ratio = five_two_three();
    assert_eq!(fen(split_by_ratio(yuan("20"), &ratio)), [1000, 400, 600]);
    assert_eq!(fen(split_by_ratio(yuan("0.01"), &ratio)), [1, 0, 0]);
    // 0.07: exact 3.5, 1.4, 2.1 → 3, 1, 2 and the left-over fen to 3.5.
    assert_eq!(fen(split_by_ratio(yuan("0.07"), &ratio)), [4, 1, 2]);
    // 20.03: exact 1001.5, 400.6, 600.9 → the two left-over fen to .9 and .6.
    assert_eq!(fen(split_by_ratio(yuan("20.03"), &ratio)), [1001, 401, 601]);
    assert_eq!(fen(split_by_ratio(Money::ZERO, &ratio)), [0, 0, 0]);
    let funders: Vec<Funder> = split_by_ratio(yuan("1"), &ratio).into_iter().map(|p| p.funder).collect();
    assert_eq!(funders, [Funder::Province, Funder::City, Funder::County]);
}

fn ratio_strategy() -> impl Strategy<Value = Ratio> {
    let funders = [Funder::Province, Funder::City, Funder::County, Funder::MedicalAssistanceFund];
    proptest::collection::vec(proptest::option::of(1u32..=2_000), 4)
        .prop_filter("at least one funder", |shares| shares.iter().any(Option::is_some))
        .prop_map(move |shares| {
            let pairs = funders.iter().cloned().zip(shares).filter_map(|(f, s)| s.map(|s| (f, s))).collect();
            Ratio::new(pairs).expect("positive shares, each funder once, total ≤ 8000")
        })
}

proptest! {
    #[test]
    fn splits_sum_to_the_whole_and_stay_within_a_fen_of_the_exact_share(
        total_fen in 0i64..100_000_000_000,
        ratio in ratio_strategy(),
    ) {
        let total = Money::from_fen(total_fen).expect("in range");
        let parts = split_by_ratio(total, &ratio);
        prop_assert_eq!(parts.len(), ratio.shares().len());
        prop_assert_eq!(parts.iter().map(|p| p.amount.fen()).sum::<i64>(), total_fen);
        let weight_total = i128::from(ratio.total());
        prop_assert!(ratio.total() <= MAX_RATIO_TOTAL);
        for (part, (funder, share)) in parts.iter().zip(ratio.shares()) {
            prop_assert_eq!(&part.funder, funder);
            // |part − total·share/Σ| < 1 fen, in integers: |part·Σ − total·share| < Σ.
            let exact_times_sum = i128::from(total_fen) * i128::from(*share);
            let distance = (i128::from(part.amount.fen()) * weight_total - exact_times_sum).abs();
            prop_assert!(distance < weight_total, "{:?} got {} of {}", funder, part.amount, total);
        }
    }

    #[test]
    fn the_chosen_subsidy_is_the_maximum_and_within_the_standard(
        picks in proptest::collection::vec(0usize..5, 0..6),
    ) {
        let policy = load("shanxi-2022.toml");
        let table: Vec<String> = policy.hardship().expect("table").groups.iter().map(|g| g.id.clone()).collect();
        let groups: Vec<&str> = picks.iter().map(|&i| table[i].as_str()).collect();
        let chosen = policy.hardship_subsidy(&groups).expect("known groups");
        let amounts: Vec<Money> = groups
            .iter()
            .map(|g| policy.hardship_subsidy(&[*g]).expect("known").map_or(Money::ZERO, |s| s.amount))
            .collect();
        let highest = amounts.iter().copied().max().unwrap_or(Money::ZERO);
        prop_assert_eq!(chosen.as_ref().map_or(Money::ZERO, |s| s.amount), highest);
        prop_assert!(highest <= policy.premium().individual);
        if let Some(s) = chosen {
            prop_assert_eq!(s.amount.fen() + s.person_pays.fen(), policy.premium().individual.fen());
        }
    }
}
