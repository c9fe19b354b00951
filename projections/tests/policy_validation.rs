//! Bad documents are refused with errors that name the field (and line);
//! the same content loads as an equal policy, changed content does not.

use ledger::RegionCode;
use projections::policy::{Policy, PolicyError, Problem, RatioError};

/// A small valid document; each test breaks one thing.
const BASE: &str = r#"region = "450800"
region_name = "贵港市"
coverage_year = 2021

[source]
title = "test"

[premium]
individual = "280"
fiscal_subsidy = "550"
full = "830"

[concentrated]
periods = [{ from = 2020-09-01, until = 2020-12-31 }]
coverage = { kind = "coverage_year_start" }

[sporadic]
window = { from = 2021-01-01, until = 2021-12-31 }
coverage = { kind = "month_start", months_after = 1 }

[[sporadic.premium]]
pays = "full"

[[hardship.county_classes]]
id = "poor"
name = "贫困县"
counties = [{ code = "450821", name = "平南县" }]

[[hardship.groups]]
id = "poor"
name = "贫困人口"
subsidy = "140"
person_pays = "140"
by_county_class = [{ county_class = "poor", ratio = { province = 5, city = 2, county = 3 } }]
"#;

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "the base document has `{from}`");
    BASE.replacen(from, to, 1)
}

fn refused(text: &str) -> PolicyError {
    match Policy::from_toml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error,
    }
}

fn invalid(text: &str) -> (String, Option<usize>, Problem, String) {
    match refused(text) {
        error @ PolicyError::Invalid { .. } => {
            let message = error.to_string();
            let PolicyError::Invalid { field, line, problem } = error else { unreachable!() };
            (field, line, problem, message)
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn syntax(text: &str) -> (String, Option<usize>, String) {
    match refused(text) {
        error @ PolicyError::Syntax { .. } => {
            let message = error.to_string();
            (error.field().to_string(), error.line(), message)
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn the_base_document_is_valid() {
    let policy = Policy::from_toml(BASE).expect("valid");
    assert_eq!(policy.coverage_year(), 2021);
}

#[test]
fn region_codes() {
    for bad in ["45080", "450801", "990000", "45O800"] {
        let (field, line, problem, message) = invalid(&with(r#"region = "450800""#, &format!(r#"region = "{bad}""#)));
        assert_eq!((field.as_str(), line), ("region", Some(1)), "{bad}");
        assert!(matches!(problem, Problem::Region(ref code) if code == bad), "{bad}");
        assert!(message.contains("field `region`") && message.contains("line 1"), "{message}");
    }
    let (field, _, problem, _) = invalid(&with(r#"code = "450821""#, r#"code = "520201""#));
    assert_eq!(field, "hardship.county_classes[0].counties[0].code");
    assert!(matches!(problem, Problem::CountyOutsideRegion { .. }));
    let (_, _, problem, _) = invalid(&with(r#"code = "450821""#, r#"code = "450800""#));
    assert!(matches!(problem, Problem::CountyOutsideRegion { .. }), "the region itself is not a county");
}

#[test]
fn coverage_year_mismatches() {
    let (field, _, problem, _) = invalid(&with("coverage_year = 2021", "coverage_year = 1999"));
    assert_eq!(field, "coverage_year");
    assert!(matches!(problem, Problem::Year(1999)));
    let text = with("[concentrated]", "[coverage]\nfrom = 2020-01-01\nuntil = 2021-12-31\n\n[concentrated]");
    let (field, line, problem, _) = invalid(&text);
    assert_eq!((field.as_str(), line), ("coverage.from", Some(14)));
    assert!(matches!(problem, Problem::YearMismatch { expected: 2021, .. }));
    let (field, _, problem, _) = invalid(&with("from = 2020-09-01", "from = 2019-09-01"));
    assert_eq!(field, "concentrated.periods[0].from");
    assert!(matches!(problem, Problem::YearMismatch { expected: 2021, .. }));
    let (field, _, _, _) = invalid(&with("until = 2021-12-31 }", "until = 2022-01-31 }"));
    assert_eq!(field, "sporadic.window.until");
    // The event's key and the document's must agree.
    let bijie: RegionCode = "520500".parse().expect("region");
    let guigang: RegionCode = "450800".parse().expect("region");
    assert!(matches!(
        Policy::from_document(guigang, 2022, BASE),
        Err(PolicyError::KeyMismatch { expected: (_, 2022), found: (_, 2021) })
    ));
    assert!(matches!(Policy::from_document(bijie, 2021, BASE), Err(PolicyError::KeyMismatch { .. })));
    assert!(Policy::from_document(guigang, 2021, BASE).is_ok());
}

#[test]
fn reversed_and_overlapping_periods() {
    let reversed = with("{ from = 2020-09-01, until = 2020-12-31 }", "{ from = 2020-12-31, until = 2020-09-01 }");
    let (field, line, problem, message) = invalid(&reversed);
    assert_eq!((field.as_str(), line), ("concentrated.periods[0]", Some(14)));
    assert!(matches!(problem, Problem::PeriodReversed { .. }));
    assert!(message.contains("after its end"), "{message}");

    let two = with(
        "[{ from = 2020-09-01, until = 2020-12-31 }]",
        "[{ from = 2020-09-01, until = 2020-11-30 }, { from = 2020-11-30, until = 2020-12-31 }]",
    );
    let (field, _, problem, _) = invalid(&two);
    assert_eq!(field, "concentrated.periods[1]");
    assert_eq!(problem, Problem::Overlap { other: "concentrated.periods[0]".into() });

    let window = with("window = { from = 2021-01-01", "window = { from = 2020-12-31");
    let (field, _, problem, _) = invalid(&window);
    assert_eq!(field, "sporadic.window");
    assert_eq!(problem, Problem::Overlap { other: "concentrated.periods[0]".into() });

    let bands = with(
        r#"pays = "full""#,
        "pays = \"full\"\n\n[[sporadic.premium]]\npaid_from = 2021-07-01\npays = \"individual\"",
    );
    let (field, _, problem, _) = invalid(&bands);
    assert_eq!(field, "sporadic.premium[1]");
    assert_eq!(problem, Problem::Overlap { other: "sporadic.premium[0]".into() });
}

/// `[[premium.in_one_payment_for]]`: a group's dates in order and apart,
/// the group one the file names, and never beside `in_one_payment = true`.
#[test]
fn one_payment_for_a_group() {
    let rule =
        |body: &str| with("full = \"830\"\n", &format!("full = \"830\"\n\n[[premium.in_one_payment_for]]\n{body}\n"));
    let ok = Policy::from_toml(&rule("group = \"newborn_late\"\npaid_from = 2021-07-01")).expect("valid");
    assert_eq!(ok.in_one_payment_for().len(), 1);
    assert_eq!(Policy::from_toml(&ok.to_canonical_toml()).expect("canonical form loads"), ok);
    assert!(Policy::from_toml(BASE).expect("valid").in_one_payment_for().is_empty(), "no key: nobody");

    let (field, line, problem, _) =
        invalid(&rule("group = \"newborn_late\"\npaid_from = 2021-12-31\npaid_until = 2021-07-01"));
    assert_eq!((field.as_str(), line), ("premium.in_one_payment_for[0]", Some(13)));
    assert!(matches!(problem, Problem::PeriodReversed { .. }));

    let twice = rule(
        "group = \"hardship\"\npaid_from = 2021-07-01\n\n[[premium.in_one_payment_for]]\ngroup = \"hardship\"\npaid_until = 2021-07-01",
    );
    let (field, _, problem, _) = invalid(&twice);
    assert_eq!(field, "premium.in_one_payment_for[1]");
    assert_eq!(problem, Problem::Overlap { other: "premium.in_one_payment_for[0]".into() });

    let everyone = with("full = \"830\"\n", "full = \"830\"\nin_one_payment = true\n")
        + "\n[[premium.in_one_payment_for]]\ngroup = \"sporadic\"\n";
    let (field, _, problem, _) = invalid(&everyone);
    assert_eq!(field, "premium.in_one_payment_for");
    assert!(matches!(problem, Problem::Choose(_)));

    let (field, _, _) = syntax(&rule("group = \"students\""));
    assert!(field.contains("group"), "{field}");
}

#[test]
fn subsidies_above_the_standard_and_inconsistent_amounts() {
    let (field, line, problem, message) = invalid(&with(r#"subsidy = "140""#, r#"subsidy = "280.01""#));
    assert_eq!((field.as_str(), line), ("hardship.groups[0].subsidy", Some(32)));
    assert!(matches!(problem, Problem::SubsidyAboveStandard { .. }));
    assert!(message.contains("above the individual standard 280.00"), "{message}");
    let (field, _, problem, _) = invalid(&with(r#"person_pays = "140""#, r#"person_pays = "40""#));
    assert_eq!(field, "hardship.groups[0].person_pays");
    assert!(matches!(problem, Problem::PersonPaysMismatch { .. }));
    let (field, line, problem, _) = invalid(&with(r#"full = "830""#, r#"full = "831""#));
    assert_eq!((field.as_str(), line), ("premium.full", Some(11)));
    assert!(matches!(problem, Problem::FullPremiumMismatch { .. }));
}

#[test]
fn ratios_with_zero_parts_or_nothing_and_tranches_that_do_not_sum() {
    let (field, _, problem, message) = invalid(&with("city = 2", "city = 0"));
    assert_eq!(field, "hardship.groups[0].by_county_class[0].ratio");
    assert_eq!(problem, Problem::Ratio(RatioError::ZeroShare(ledger::event::Funder::City)));
    assert!(message.contains("`city` is 0"), "{message}");
    let (_, _, problem, _) = invalid(&with("{ province = 5, city = 2, county = 3 }", "{}"));
    assert_eq!(problem, Problem::Ratio(RatioError::Empty));
    let tranches = with(
        r#"by_county_class = [{ county_class = "poor", ratio = { province = 5, city = 2, county = 3 } }]"#,
        "\n[[hardship.groups.tranches]]\namount = \"120\"\nfunding_unstated = \"as 2020\"\n\n\
         [[hardship.groups.tranches]]\namount = \"30\"\nratio = { county = 1 }",
    );
    let (field, _, problem, message) = invalid(&tranches);
    assert_eq!(field, "hardship.groups[0].tranches");
    assert!(matches!(problem, Problem::TranchesDoNotSum { .. }));
    assert!(message.contains("sum to 150.00, not to the subsidy 140.00"), "{message}");
    let (_, _, problem, _) = invalid(&with(r#"county_class = "poor", ratio"#, r#"county_class = "rich", ratio"#));
    assert_eq!(problem, Problem::UnknownCountyClass("rich".into()));
    let (field, _, problem, _) =
        invalid(&with(r#"person_pays = "140""#, "person_pays = \"140\"\nratio = { county = 1 }"));
    assert_eq!(field, "hardship.groups[0]");
    assert!(matches!(problem, Problem::Choose(_)));
}

#[test]
fn amounts_are_money_to_the_fen() {
    for (bad, says) in [(r#""-280""#, "negative"), (r#""280.001""#, "more than two decimals"), ("-1", "negative")] {
        let (field, line, message) = syntax(&with(r#"individual = "280""#, &format!("individual = {bad}")));
        assert_eq!((field.as_str(), line), ("premium.individual", Some(9)), "{bad}");
        assert!(message.contains(says) && message.contains("field `premium.individual`"), "{message}");
    }
    let (field, _, message) = syntax(&with(r#"subsidy = "140""#, r#"subsidy = "lots""#));
    assert_eq!(field, "hardship.groups[0].subsidy");
    assert!(message.contains("not a decimal amount"), "{message}");
}

#[test]
fn rule_kinds_with_missing_stray_or_unknown_parameters() {
    let (field, line, problem, message) =
        invalid(&with(r#"kind = "month_start", months_after = 1"#, r#"kind = "month_start""#));
    assert_eq!((field.as_str(), line), ("sporadic.coverage", Some(19)));
    assert_eq!(problem, Problem::MissingParameter { kind: "month_start".into(), parameter: "months_after" });
    assert!(message.contains("rule `month_start` needs `months_after`"), "{message}");
    let (_, _, problem, _) = invalid(&with(r#"kind = "month_start", months_after = 1"#, r#"kind = "waiting_days""#));
    assert_eq!(problem, Problem::MissingParameter { kind: "waiting_days".into(), parameter: "waiting_days" });
    let stray = with(r#"kind = "coverage_year_start""#, r#"kind = "coverage_year_start", waiting_days = 60"#);
    let (field, _, problem, _) = invalid(&stray);
    assert_eq!(field, "concentrated.coverage");
    assert_eq!(problem, Problem::UnexpectedParameter { kind: "coverage_year_start".into(), parameter: "waiting_days" });
    let (_, _, problem, _) = invalid(&with(r#"kind = "coverage_year_start""#, r#"kind = "whenever""#));
    assert!(matches!(problem, Problem::UnknownKind { ref kind, .. } if kind == "whenever"));
    let newborn = format!(
        "{BASE}\n[newborn]\nwindow = {{ months = 3, days = 90 }}\npays = \"individual\"\nin_window_coverage = {{ kind = \"from_birth\" }}\n"
    );
    let (field, _, problem, _) = invalid(&newborn);
    assert_eq!(field, "newborn.window");
    assert!(matches!(problem, Problem::Choose(_)));
}

#[test]
fn unknown_fields_bad_dates_and_broken_toml() {
    let (field, line, message) = syntax(&with("[premium]\n", "[premium]\nindividual_fen = 28000\n"));
    assert_eq!((field.as_str(), line), ("premium.individual_fen", Some(9)));
    assert!(message.contains("unknown field `individual_fen`"), "{message}");
    let (field, _, _) = syntax(&with("[source]", "[sources]"));
    assert_eq!(field, "sources");
    let (field, _, _) = syntax(&with(r#"region_name = "贵港市""#, ""));
    assert_eq!(field, "", "a missing top-level field has no deeper path");
    let (field, _, problem, _) = invalid(&with("from = 2020-09-01", "from = 2020-09-01T08:00:00"));
    assert_eq!(field, "concentrated.periods[0].from");
    assert!(matches!(problem, Problem::NotADate(_)));
    let (_, line, _) = syntax(&with("from = 2020-09-01", "from = 2020-09-31"));
    assert_eq!(line, Some(14));
    let (field, line, message) = syntax("region = \"450800\"\n[premium\n");
    assert_eq!((field.as_str(), line), ("", Some(2)));
    assert!(message.starts_with("policy document, line 2"), "{message}");
    assert!(matches!(Policy::from_toml(""), Err(PolicyError::Syntax { .. })));
    assert!(matches!(Policy::from_toml("\u{0}\u{fffd}"), Err(PolicyError::Syntax { .. })));
    let huge = format!("{BASE}\n# {}\n", "x".repeat(ledger::event::MAX_DOCUMENT_BYTES));
    assert!(matches!(Policy::from_toml(&huge), Err(PolicyError::TooLarge { .. })));
}

#[test]
fn same_content_is_the_same_policy_and_a_change_is_not() {
    let original = Policy::from_toml(BASE).expect("valid");
    // Comments, blank lines, key order and number spelling do not count.
    let reworded = BASE
        .replace("individual = \"280\"", "# 个人缴费\nindividual = 280.00")
        .replace("region_name = \"贵港市\"\ncoverage_year = 2021", "coverage_year = 2021\nregion_name = \"贵港市\"");
    let same = Policy::from_toml(&reworded).expect("valid");
    assert_eq!(same, original);
    assert_eq!(same.content_digest(), original.content_digest());
    assert_eq!(same.to_canonical_toml(), original.to_canonical_toml());
    // A changed figure is different content: the caller records an amendment.
    let amended = Policy::from_toml(
        &with(r#"subsidy = "140""#, "subsidy = \"150\"\n").replace(r#"person_pays = "140""#, r#"person_pays = "130""#),
    )
    .expect("valid");
    assert_eq!(amended.key(), original.key());
    assert_ne!(amended, original);
    assert_ne!(amended.content_digest(), original.content_digest());
}

mod never_panics {
    use super::BASE;
    use projections::policy::Policy;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Cut, spliced or garbled documents give an error or a policy, never a
        /// panic; whatever loads survives its canonical form.
        #[test]
        fn mangled_documents(cut in 0usize..2_000, insert in "[\\PC\n\"=\\[\\]{},.0-9-]{0,12}") {
            let chars: Vec<char> = BASE.chars().collect();
            let at = cut % (chars.len() + 1);
            let head: String = chars[..at].iter().collect();
            let tail: String = chars[at..].iter().collect();
            for text in [head.clone(), format!("{head}{insert}{tail}")] {
                if let Ok(policy) = Policy::from_toml(&text) {
                    let again = Policy::from_toml(&policy.to_canonical_toml());
                    prop_assert_eq!(again.as_ref(), Ok(&policy));
                }
            }
        }
    }
}
