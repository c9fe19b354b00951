//! The `[family_account]` section of a policy (职工医保个人账户家庭共济代缴):
//! the province rule and the normal processing time are data, validated
//! with field and line, and survive the canonical form.

use ledger::event::Relation;
use projections::policy::{FamilyAccount, Policy, PolicyError, Problem, Relations};

const BIJIE: &str = include_str!("../../fixtures/policies/bijie-2025.toml");

/// A small valid document; the tests append a section to it.
const BASE: &str = r#"region = "520500"
region_name = "毕节市"
coverage_year = 2025

[source]
title = "test"

[premium]
individual = "400"
fiscal_subsidy = "670"
full = "1070"
"#;

fn with_section(section: &str) -> String {
    format!("{BASE}\n[family_account]\n{section}\n")
}

#[test]
fn bijie_states_the_province_rule_and_three_days() {
    let policy = Policy::from_toml(BIJIE).expect("the fixture loads");
    let mut near_relatives = Relations::default();
    for (relation, _, _) in projections::family::RELATIONS {
        near_relatives.insert(relation);
    }
    assert_eq!(
        policy.family_account(),
        Some(FamilyAccount { same_province_only: true, processing_days: Some(3), relations: Some(near_relatives) })
    );
    for name in ["liupanshui-2021.toml", "guigang-2021.toml", "anqing-2024.toml", "shanxi-2022.toml"] {
        let path = format!("{}/../fixtures/policies/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        let policy = Policy::from_toml(&text).expect("fixture loads");
        assert_eq!(policy.family_account(), None, "{name}: its source says nothing of family accounts");
    }
}

#[test]
fn the_section_round_trips_and_changes_the_digest() {
    let stated = Policy::from_toml(&with_section("same_province_only = true\nprocessing_days = 3")).expect("valid");
    let canonical = stated.to_canonical_toml();
    assert!(canonical.contains("[family_account]"), "{canonical}");
    assert_eq!(Policy::from_toml(&canonical).expect("canonical"), stated);
    let without = Policy::from_toml(BASE).expect("valid");
    assert_ne!(stated.content_digest(), without.content_digest(), "a new rule is an amendment");
    let open = Policy::from_toml(&with_section("same_province_only = false")).expect("valid");
    assert_eq!(
        open.family_account(),
        Some(FamilyAccount { same_province_only: false, processing_days: None, relations: None })
    );
    assert_ne!(open.content_digest(), stated.content_digest());
}

/// Whom an account may pay for is data of the year (Bijie: direct family
/// from 2024, near relatives in 2025); the names are those of bindings, in
/// English or the source's words, and survive the canonical form.
#[test]
fn the_relations_of_a_year_are_data() {
    let direct =
        Policy::from_toml(&with_section("same_province_only = true\nrelations = [\"配偶\", \"parent\", \"子女\"]"))
            .expect("valid");
    let relations = direct.family_account().and_then(|f| f.relations).expect("relations stated");
    assert_eq!(relations.iter().collect::<Vec<_>>(), vec![Relation::Spouse, Relation::Parent, Relation::Child]);
    assert!(!relations.contains(Relation::Sibling));
    let canonical = direct.to_canonical_toml();
    assert!(canonical.contains("relations = [\"spouse\", \"parent\", \"child\"]"), "{canonical}");
    assert_eq!(Policy::from_toml(&canonical).expect("canonical"), direct);
    for (list, problem) in
        [("[\"spouse\", \"friend\"]", "friend"), ("[\"spouse\", \"配偶\"]", "given twice"), ("[]", "at least one")]
    {
        match Policy::from_toml(&with_section(&format!("same_province_only = true\nrelations = {list}"))) {
            Err(error @ PolicyError::Invalid { .. }) => {
                assert_eq!(error.field(), "family_account.relations", "{error}");
                assert!(error.to_string().contains(problem), "{list}: {error}");
                assert!(error.line().is_some(), "{error}");
            }
            other => panic!("{list}: {other:?}"),
        }
    }
}

#[test]
fn bad_sections_are_refused_with_field_and_line() {
    let line_of_section = BASE.lines().count() + 2;
    for (days, expected) in [("0", Problem::TooSmall { min: 1 }), ("400", Problem::TooLarge { max: 366 })] {
        let text = with_section(&format!("same_province_only = true\nprocessing_days = {days}"));
        match Policy::from_toml(&text) {
            Err(error @ PolicyError::Invalid { .. }) => {
                assert_eq!(error.field(), "family_account.processing_days", "{error}");
                assert_eq!(error.problem(), Some(&expected));
                assert!(error.line().is_some_and(|line| line >= line_of_section), "{error}");
            }
            other => panic!("{days} days: {other:?}"),
        }
    }
    for (section, field) in [
        ("processing_days = 3", "family_account"),
        ("same_province_only = \"yes\"", "family_account.same_province_only"),
        ("same_province_only = true\naccount_province = \"520000\"", "family_account.account_province"),
        ("same_province_only = true\nprocessing_days = -1", "family_account.processing_days"),
    ] {
        match Policy::from_toml(&with_section(section)) {
            Err(error @ PolicyError::Syntax { .. }) => {
                assert_eq!(error.field(), field, "{section}: {error}");
                assert!(error.line().is_some(), "{section}: {error}");
            }
            other => panic!("{section}: {other:?}"),
        }
    }
}
