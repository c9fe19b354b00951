//! Every fixture in `fixtures/policies` loads, carries the figures of its
//! source (domain.md), and survives its canonical form unchanged.

use ledger::event::{EnrolmentBasis, Funder};
use ledger::{Date, Money, RegionCode};
use projections::policy::{
    CoverageStart, Exemption, Funding, GroupOnePayment, OpenPeriod, PayerGroup, Pays, Period, PersonFacts, Policy,
    Ratio, Subsidy, TrancheAmount, Window,
};
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/policies")
}

fn load(name: &str) -> Policy {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Policy::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

fn yuan(text: &str) -> Money {
    text.parse().expect("test amount")
}

fn region(text: &str) -> RegionCode {
    text.parse().expect("test region")
}

fn period(from: &str, until: &str) -> Period {
    Period { from: date(from), until: date(until) }
}

const FIXTURES: &[(&str, &str, u16)] = &[
    ("liupanshui-2021.toml", "520200", 2021),
    ("bijie-2025.toml", "520500", 2025),
    ("guigang-2021.toml", "450800", 2021),
    ("anqing-2023.toml", "340800", 2023),
    ("anqing-2024.toml", "340800", 2024),
    ("shanxi-2022.toml", "140000", 2022),
];

#[test]
fn every_fixture_file_is_listed_and_loads_with_its_key() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/policies")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(name, _, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for (name, code, year) in FIXTURES {
        let policy = load(name);
        assert_eq!(policy.key(), (region(code), *year), "{name}");
        assert!(policy.source().file.as_deref().is_some_and(|f| f.starts_with("shared/seeds/")), "{name}");
    }
}

#[test]
fn canonical_form_round_trips_and_is_stable() {
    for (name, _, _) in FIXTURES {
        let policy = load(name);
        let canonical = policy.to_canonical_toml();
        let again = Policy::from_toml(&canonical).unwrap_or_else(|e| panic!("{name} canonical: {e}\n{canonical}"));
        assert_eq!(again, policy, "{name}");
        assert_eq!(again.to_canonical_toml(), canonical, "{name}");
        assert_eq!(again.content_digest(), policy.content_digest(), "{name}");
    }
}

#[test]
fn different_region_years_have_different_digests() {
    let digests: std::collections::BTreeSet<[u8; 32]> =
        FIXTURES.iter().map(|(name, _, _)| load(name).content_digest()).collect();
    assert_eq!(digests.len(), FIXTURES.len());
}

#[test]
fn liupanshui_2021_figures() {
    let p = load("liupanshui-2021.toml");
    assert_eq!(p.premium().individual, yuan("280"));
    assert_eq!(p.premium().fiscal_subsidy, Some(yuan("550")));
    assert_eq!(p.premium().full, Some(yuan("830")));
    assert_eq!(p.coverage(), period("2021-01-01", "2021-12-31"));
    let concentrated = p.concentrated().expect("concentrated");
    assert_eq!(concentrated.periods, vec![period("2020-11-16", "2021-03-31")]);
    assert_eq!(concentrated.coverage, CoverageStart::CoverageYearStart);
    let sporadic = p.sporadic().expect("sporadic");
    assert_eq!(sporadic.window, Some(period("2021-04-01", "2021-12-31")));
    assert_eq!(sporadic.coverage, CoverageStart::WaitingDays { waiting_days: 60 });
    assert_eq!(sporadic.premium.len(), 1);
    assert_eq!(sporadic.premium[0].pays, Pays::Full);
    assert!(p.newborn().is_none() && p.interrupted().is_none() && p.employee_transfer().is_none());
    assert!(!p.special_path_closes_after_normal_payment());

    let hardship = p.hardship().expect("hardship");
    let ids: Vec<&str> = hardship.groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "registered_poor",
            "family_planning_special",
            "rural_family_planning_two_households",
            "orphan",
            "extreme_poverty_support",
            "laid_off_1960s",
            "mental_disorder_incident"
        ]
    );
    let poor = &hardship.groups[0];
    assert_eq!(poor.name, "建档立卡贫困人口");
    assert_eq!(poor.subsidy, Subsidy::Amount(yuan("140")));
    assert_eq!(poor.tranches.len(), 2);
    assert_eq!(poor.tranches[0].amount, TrancheAmount::Amount(yuan("120")));
    assert!(matches!(&poor.tranches[0].funding, Funding::Unstated(note) if note.contains("2020")));
    assert_eq!(poor.tranches[1].amount, TrancheAmount::Amount(yuan("20")));
    let Funding::ByCountyClass(classes) = &poor.tranches[1].funding else { panic!("by county class") };
    assert_eq!(classes[0].county_class, "first_class_poor");
    assert_eq!(
        classes[0].ratio,
        Ratio::new(vec![(Funder::Province, 5), (Funder::City, 2), (Funder::County, 3)]).expect("ratio")
    );
    assert_eq!(classes[1].county_class, "non_poor");
    assert_eq!(classes[1].ratio, Ratio::alone(Funder::County));
    for county in ["520203", "520281", "520221", "520204"] {
        assert_eq!(p.county_class_of(region(county)), Some("first_class_poor"), "{county}");
    }
    assert_eq!(p.county_class_of(region("520201")), Some("non_poor"));
    for group in &hardship.groups[1..3] {
        assert_eq!(group.subsidy, Subsidy::Full);
        assert!(matches!(&group.tranches[..], [t] if t.funding == Funding::Ratio(Ratio::alone(Funder::County))));
    }
    for group in &hardship.groups[3..] {
        assert_eq!(group.subsidy, Subsidy::Full);
        let fund = Funding::Ratio(Ratio::alone(Funder::MedicalAssistanceFund));
        assert!(matches!(&group.tranches[..], [t] if t.funding == fund), "{}", group.id);
    }
}

#[test]
fn bijie_2025_figures() {
    let p = load("bijie-2025.toml");
    assert_eq!(p.premium().individual, yuan("400"));
    assert_eq!(p.premium().fiscal_subsidy, Some(yuan("670")));
    assert_eq!(p.premium().full, Some(yuan("1070")));
    assert_eq!(p.concentrated().expect("period").periods, vec![period("2024-09-23", "2025-02-28")]);
    let sporadic = p.sporadic().expect("sporadic");
    assert_eq!(sporadic.coverage, CoverageStart::WaitingDays { waiting_days: 90 });
    assert_eq!(sporadic.exempt, vec![Exemption::Newborn, Exemption::Hardship]);
    assert_eq!(sporadic.window, None);
    assert_eq!(p.sporadic_window(), Some(period("2025-03-01", "2025-12-31")));
    assert!(p.hardship().is_none() && p.newborn().is_none());
}

#[test]
fn guigang_2021_figures() {
    let p = load("guigang-2021.toml");
    assert_eq!(p.premium().individual, yuan("280"));
    assert_eq!(p.premium().fiscal_subsidy, None, "金额待定: unset, never 0");
    assert_eq!(p.premium().full, None);
    let concentrated = p.concentrated().expect("period");
    assert_eq!(concentrated.periods, vec![period("2020-09-01", "2020-12-31")]);
    assert_eq!(concentrated.extended_until_for_hardship, Some(date("2021-02-28")));
    let sporadic = p.sporadic().expect("sporadic");
    assert_eq!(sporadic.coverage, CoverageStart::MonthStart { months_after: 1 });
    assert_eq!(sporadic.premium.len(), 2);
    assert_eq!(
        (sporadic.premium[0].paid.until, sporadic.premium[0].pays),
        (Some(date("2021-06-30")), Pays::Individual)
    );
    assert_eq!((sporadic.premium[1].paid.from, sporadic.premium[1].pays), (Some(date("2021-07-01")), Pays::Full));
    let interrupted = p.interrupted().expect("interrupted");
    assert_eq!(interrupted.min_gap_years, 1);
    assert_eq!(interrupted.coverage, CoverageStart::MonthStart { months_after: 3 });
    assert_eq!(p.employee_transfer().expect("transfer").coverage, CoverageStart::MonthStart { months_after: 0 });
    let newborn = p.newborn().expect("newborn");
    assert_eq!(newborn.window, Window::Months(3));
    assert_eq!(newborn.pays, Pays::Individual);
    assert_eq!(newborn.in_window_coverage, CoverageStart::FromBirth);
    assert_eq!(newborn.late_coverage, Some(CoverageStart::MonthStart { months_after: 1 }));
    assert!(newborn.back_payment);
    assert_eq!(newborn.pre_registration_lapse, Some(Window::Months(3)));
    // 一次性缴纳 asked of late newborns paying from 1 July to 31 December only.
    assert!(!p.premium().in_one_payment);
    let late = OpenPeriod { from: Some(date("2021-07-01")), until: Some(date("2021-12-31")) };
    assert_eq!(p.in_one_payment_for(), [GroupOnePayment { group: PayerGroup::NewbornLate, paid: late }]);
    let newborn = PersonFacts {
        birth_date: date("2021-03-15"),
        basis: EnrolmentBasis::Newborn,
        hardship_groups: Vec::new(),
        county: None,
    };
    let adult = PersonFacts::born(date("1980-01-01"));
    assert!(p.one_payment_required_of(date("2021-08-01"), &newborn).is_some(), "late newborn, from July");
    assert!(p.one_payment_required_of(date("2021-06-30"), &newborn).is_none(), "late newborn, before July");
    assert!(p.one_payment_required_of(date("2021-05-01"), &newborn).is_none(), "within the window");
    assert!(p.one_payment_required_of(date("2021-08-01"), &adult).is_none(), "not a newborn");
}

#[test]
fn anqing_figures() {
    let p = load("anqing-2024.toml");
    assert_eq!(p.premium().individual, yuan("380"));
    assert_eq!(p.premium().fiscal_subsidy, Some(yuan("640")));
    assert_eq!(p.full_premium().known(), Some(yuan("1020")), "筹资标准为1020元");
    assert_eq!(p.premium().full, None);
    assert!(p.premium().in_one_payment, "由参保人员按年度一次性足额缴纳");
    assert!(Policy::from_toml(&p.to_canonical_toml()).expect("canonical").premium().in_one_payment);
    assert_eq!(p.coverage(), period("2024-01-01", "2024-12-31"));
    assert_eq!(p.covered_until(), date("2024-12-31"));
    assert_eq!(p.concentrated().expect("period").periods, vec![period("2023-09-01", "2023-12-31")]);
    assert!(p.sporadic().is_none() && p.hardship().is_none());
    let newborn = p.newborn().expect("newborn");
    assert_eq!(newborn.window, Window::Days(90));
    assert_eq!(newborn.in_window_coverage, CoverageStart::FromBirth);

    let p = load("anqing-2023.toml");
    assert_eq!(p.premium().individual, yuan("350"));
    assert!(!p.premium().in_one_payment, "the 2023 figure's sentence says nothing of it");
    assert_eq!(p.premium().fiscal_subsidy, None);
    assert!(p.concentrated().is_none() && p.sporadic().is_none());
    assert_eq!(p.newborn().expect("newborn").window, Window::Days(90));
}

#[test]
fn shanxi_2022_figures() {
    let p = load("shanxi-2022.toml");
    assert_eq!(p.premium().individual, yuan("320"));
    assert_eq!(p.premium().fiscal_subsidy, None);
    assert!(p.scope().is_some_and(|s| s.contains("特殊人群")));
    assert!(p.special_path_closes_after_normal_payment());
    assert_eq!(p.assessment().and_then(|a| a.advised_payment_delay_days), Some(1));
    let groups: Vec<(&str, &str, Subsidy)> =
        p.hardship().expect("table").groups.iter().map(|g| (g.id.as_str(), g.name.as_str(), g.subsidy)).collect();
    assert_eq!(
        groups,
        [
            ("at_risk_of_poverty", "易返贫致贫人口", Subsidy::Amount(yuan("280"))),
            ("fell_back_into_poverty", "返贫致贫人口", Subsidy::Amount(yuan("288"))),
            ("extreme_poverty", "特困人员", Subsidy::Full),
            ("minimum_living_allowance", "低保对象", Subsidy::Amount(yuan("280"))),
            ("stably_out_of_poverty", "稳定脱贫人口", Subsidy::None),
        ]
    );
}
