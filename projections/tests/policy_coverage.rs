//! Coverage rules of each region-year, given/when/then: a person, a payment
//! date, and what the policy says (class, premium due, first covered day).
//! Adding a case is adding a line to a table.

use ledger::event::EnrolmentBasis;
use ledger::{BeijingTime, Date, Money};
use projections::policy::{
    first_covered_day, month_start_after, window_last_day, AmountDue, Closed, CoverageStart, CoveredFrom, Exemption,
    PaymentClass, Period, PersonFacts, Policy, Ruling, Window,
};
use std::path::PathBuf;

fn load(name: &str) -> Policy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/policies").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Policy::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

fn yuan(text: &str) -> AmountDue {
    Ruling::Known(text.parse::<Money>().expect("test amount"))
}

fn on(text: &str) -> CoveredFrom {
    Ruling::Known(date(text))
}

fn awaiting<T>(missing: &'static str) -> Ruling<T> {
    Ruling::AwaitingPolicy { missing }
}

const ADULT: &str = "1980-05-05";

fn adult() -> PersonFacts {
    PersonFacts::born(date(ADULT))
}

fn baby(born: &str) -> PersonFacts {
    PersonFacts { basis: EnrolmentBasis::Newborn, ..PersonFacts::born(date(born)) }
}

fn interrupted(last_paid_year: u16) -> PersonFacts {
    PersonFacts { basis: EnrolmentBasis::Interrupted { last_paid_year }, ..adult() }
}

fn transferred(left_on: &str) -> PersonFacts {
    PersonFacts { basis: EnrolmentBasis::FromEmployeeInsurance { left_on: date(left_on) }, ..adult() }
}

fn hardship(group: &str) -> PersonFacts {
    PersonFacts { hardship_groups: vec![group.to_string()], ..adult() }
}

const CONCENTRATED: PaymentClass = PaymentClass::Concentrated { extended: false };
const IN_WINDOW: PaymentClass = PaymentClass::NewbornInWindow { back_payment: false };
const BACK_PAYMENT: PaymentClass = PaymentClass::NewbornInWindow { back_payment: true };
const AWAITING_FISCAL: AmountDue = Ruling::AwaitingPolicy { missing: "premium.fiscal_subsidy" };

struct Case {
    name: &'static str,
    person: PersonFacts,
    paid_on: &'static str,
    class: PaymentClass,
    due: AmountDue,
    from: CoveredFrom,
    /// Whether the payment covers at least one day of the year.
    covers: bool,
}

fn case(
    name: &'static str,
    person: PersonFacts,
    paid_on: &'static str,
    class: PaymentClass,
    due: AmountDue,
    from: CoveredFrom,
) -> Case {
    let covers = matches!(from, Ruling::Known(_));
    Case { name, person, paid_on, class, due, from, covers }
}

/// The same case, but its first covered day falls after the year's end.
fn uncovered(mut case: Case) -> Case {
    case.covers = false;
    case
}

fn check(policy_file: &str, cases: Vec<Case>) {
    let policy = load(policy_file);
    for case in cases {
        let context = format!("{policy_file}: {} (paid {})", case.name, case.paid_on);
        let assessment = policy.assess(date(case.paid_on), &case.person);
        assert_eq!(assessment.class, case.class, "{context}: class");
        assert_eq!(assessment.premium_due, case.due, "{context}: premium due");
        assert_eq!(assessment.covered_from, case.from, "{context}: covered from");
        assert_eq!(assessment.covered_until, policy.covered_until(), "{context}: covered until");
        assert_eq!(assessment.covered().is_some(), case.covers, "{context}: covers a day of the year");
        // The three pieces agree with the one-call assessment.
        let class = policy.classify_payment(date(case.paid_on), &case.person);
        assert_eq!(policy.amount_due(class, date(case.paid_on)), case.due, "{context}");
        assert_eq!(policy.covered_from(class, date(case.paid_on), &case.person), case.from, "{context}");
    }
}

#[test]
fn liupanshui_2021() {
    let sixty_days = |paid: &'static str, from: &'static str| {
        case("sporadic: paid + 60 days", adult(), paid, PaymentClass::Sporadic, yuan("830"), on(from))
    };
    check(
        "liupanshui-2021.toml",
        vec![
            case("first day of the period", adult(), "2020-11-16", CONCENTRATED, yuan("280"), on("2021-01-01")),
            case("last day of the period", adult(), "2021-03-31", CONCENTRATED, yuan("280"), on("2021-01-01")),
            sixty_days("2021-04-01", "2021-05-31"),
            sixty_days("2021-04-10", "2021-06-09"),
            sixty_days("2021-06-30", "2021-08-29"),
            sixty_days("2021-11-01", "2021-12-31"),
            uncovered(sixty_days("2021-11-02", "2022-01-01")),
            uncovered(sixty_days("2021-12-31", "2022-03-01")),
            case(
                "no newborn rule: a baby pays as anyone",
                baby("2021-05-01"),
                "2021-05-10",
                PaymentClass::Sporadic,
                yuan("830"),
                on("2021-07-09"),
            ),
            case(
                "before the period",
                adult(),
                "2020-11-15",
                PaymentClass::Closed(Closed::BeforeCollection),
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
            ),
            case(
                "after the year",
                adult(),
                "2022-01-05",
                PaymentClass::Closed(Closed::AfterCoverageYear),
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
            ),
        ],
    );
}

#[test]
fn liupanshui_business_date_is_beijing_time() {
    let policy = load("liupanshui-2021.toml");
    // 2021-03-31 16:30 UTC is 00:30 on 1 April in Beijing: a sporadic payment.
    let paid: BeijingTime = "2021-03-31T16:30:00Z".parse().expect("time");
    let assessment = policy.assess(paid.business_date(), &adult());
    assert_eq!(assessment.class, PaymentClass::Sporadic);
    assert_eq!(assessment.covered_from, on("2021-05-31"));
    let paid: BeijingTime = "2021-03-31T15:59:59Z".parse().expect("time");
    assert_eq!(policy.assess(paid.business_date(), &adult()).class, CONCENTRATED);
}

#[test]
fn bijie_2025() {
    check(
        "bijie-2025.toml",
        vec![
            case("in the period", adult(), "2024-09-23", CONCENTRATED, yuan("400"), on("2025-01-01")),
            case("last day of the period", adult(), "2025-02-28", CONCENTRATED, yuan("400"), on("2025-01-01")),
            case("hardship in the period", hardship("x"), "2024-12-01", CONCENTRATED, yuan("400"), on("2025-01-01")),
            case("sporadic: + 90 days", adult(), "2025-03-01", PaymentClass::Sporadic, yuan("1070"), on("2025-05-30")),
            case("sporadic, Oct 2", adult(), "2025-10-02", PaymentClass::Sporadic, yuan("1070"), on("2025-12-31")),
            uncovered(case(
                "sporadic, Oct 3",
                adult(),
                "2025-10-03",
                PaymentClass::Sporadic,
                yuan("1070"),
                on("2026-01-01"),
            )),
            case(
                "newborn: exempt, rule not given",
                baby("2025-04-01"),
                "2025-04-10",
                PaymentClass::Exempt(Exemption::Newborn),
                awaiting("sporadic.exempt"),
                awaiting("sporadic.exempt"),
            ),
            case(
                "hardship: exempt, rule not given",
                hardship("low_income"),
                "2025-05-01",
                PaymentClass::Exempt(Exemption::Hardship),
                awaiting("sporadic.exempt"),
                awaiting("sporadic.exempt"),
            ),
            case(
                "before the period",
                adult(),
                "2024-09-22",
                PaymentClass::Closed(Closed::BeforeCollection),
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
            ),
        ],
    );
    let policy = load("bijie-2025.toml");
    let paid: BeijingTime = "2025-02-28T16:30:00Z".parse().expect("time");
    assert_eq!(paid.business_date(), date("2025-03-01"));
    assert_eq!(policy.assess(paid.business_date(), &adult()).covered_from, on("2025-05-30"));
}

#[test]
fn guigang_2021_concentrated_and_sporadic() {
    check(
        "guigang-2021.toml",
        vec![
            case("first day of the period", adult(), "2020-09-01", CONCENTRATED, yuan("280"), on("2021-01-01")),
            case("last day of the period", adult(), "2020-12-31", CONCENTRATED, yuan("280"), on("2021-01-01")),
            case(
                "hardship: period extended to end of February",
                hardship("any_certified_group"),
                "2021-02-28",
                PaymentClass::Concentrated { extended: true },
                yuan("280"),
                on("2021-01-01"),
            ),
            case("no hardship: sporadic", adult(), "2021-02-15", PaymentClass::Sporadic, yuan("280"), on("2021-03-01")),
            case(
                "hardship after the extension",
                hardship("any_certified_group"),
                "2021-03-01",
                PaymentClass::Sporadic,
                yuan("280"),
                on("2021-04-01"),
            ),
            case("31 Jan: next month", adult(), "2021-01-31", PaymentClass::Sporadic, yuan("280"), on("2021-02-01")),
            case("30 Jun: still 280", adult(), "2021-06-30", PaymentClass::Sporadic, yuan("280"), on("2021-07-01")),
            case(
                "1 Jul: full premium",
                adult(),
                "2021-07-01",
                PaymentClass::Sporadic,
                AWAITING_FISCAL,
                on("2021-08-01"),
            ),
            case("30 Nov", adult(), "2021-11-30", PaymentClass::Sporadic, AWAITING_FISCAL, on("2021-12-01")),
            uncovered(case(
                "December: from next year",
                adult(),
                "2021-12-15",
                PaymentClass::Sporadic,
                AWAITING_FISCAL,
                on("2022-01-01"),
            )),
            case(
                "before the period",
                adult(),
                "2020-08-31",
                PaymentClass::Closed(Closed::BeforeCollection),
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
                Ruling::Refused { reason: Closed::BeforeCollection.reason() },
            ),
        ],
    );
}

#[test]
fn guigang_2021_interrupted_and_transfer() {
    check(
        "guigang-2021.toml",
        vec![
            // 从参保缴费后第3个月1日起: paid in March → April, May, June → 1 June.
            case(
                "interrupted, March",
                interrupted(2019),
                "2021-03-10",
                PaymentClass::Interrupted,
                yuan("280"),
                on("2021-06-01"),
            ),
            case(
                "interrupted, 31 Jan",
                interrupted(2018),
                "2021-01-31",
                PaymentClass::Interrupted,
                yuan("280"),
                on("2021-04-01"),
            ),
            uncovered(case(
                "interrupted, November: beyond the year",
                interrupted(2019),
                "2021-11-15",
                PaymentClass::Interrupted,
                AWAITING_FISCAL,
                on("2022-02-01"),
            )),
            case(
                "interrupted, in the period",
                interrupted(2019),
                "2020-10-10",
                CONCENTRATED,
                yuan("280"),
                on("2021-01-01"),
            ),
            case(
                "paid 2020: no gap",
                interrupted(2020),
                "2021-03-10",
                PaymentClass::Sporadic,
                yuan("280"),
                on("2021-04-01"),
            ),
            case(
                "left employee insurance in May",
                transferred("2021-05-20"),
                "2021-05-25",
                PaymentClass::FromEmployeeInsurance,
                yuan("280"),
                on("2021-05-01"),
            ),
            case(
                "transfer after 1 July",
                transferred("2021-05-20"),
                "2021-08-03",
                PaymentClass::FromEmployeeInsurance,
                AWAITING_FISCAL,
                on("2021-08-01"),
            ),
            case(
                "left in 2020: not the same year",
                transferred("2020-12-20"),
                "2021-01-10",
                PaymentClass::Sporadic,
                yuan("280"),
                on("2021-02-01"),
            ),
        ],
    );
}

#[test]
fn guigang_2021_newborns() {
    check(
        "guigang-2021.toml",
        vec![
            case("within 3 months", baby("2021-03-15"), "2021-04-02", IN_WINDOW, yuan("280"), on("2021-03-15")),
            case("last day of the window", baby("2021-03-15"), "2021-06-15", IN_WINDOW, yuan("280"), on("2021-03-15")),
            case(
                "a day late",
                baby("2021-03-15"),
                "2021-06-16",
                PaymentClass::NewbornLate,
                yuan("280"),
                on("2021-07-01"),
            ),
            case(
                "in window after 1 Jul: 280",
                baby("2021-05-10"),
                "2021-08-10",
                IN_WINDOW,
                yuan("280"),
                on("2021-05-10"),
            ),
            case(
                "late after 1 Jul: full premium",
                baby("2021-05-10"),
                "2021-08-11",
                PaymentClass::NewbornLate,
                AWAITING_FISCAL,
                on("2021-09-01"),
            ),
            // Born 30 Nov: three months later has no 30th, so 28 Feb ends the window.
            case("born the year before", baby("2020-11-30"), "2021-02-28", IN_WINDOW, yuan("280"), on("2021-01-01")),
            case(
                "born the year before, late",
                baby("2020-11-30"),
                "2021-03-01",
                PaymentClass::NewbornLate,
                yuan("280"),
                on("2021-04-01"),
            ),
            case("back-payment in 2022", baby("2021-11-20"), "2022-02-20", BACK_PAYMENT, yuan("280"), on("2021-11-20")),
            case(
                "back-payment too late",
                baby("2021-11-20"),
                "2022-02-21",
                PaymentClass::Closed(Closed::AfterCoverageYear),
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
            ),
        ],
    );
    let policy = load("guigang-2021.toml");
    assert_eq!(policy.pre_registration_void_from(date("2021-01-15")), Some(date("2021-04-16")));
    assert_eq!(policy.pre_registration_void_from(date("2021-11-30")), Some(date("2022-03-01")));
    assert_eq!(policy.newborn_window_last_day(date("2020-11-30")), Some(date("2021-02-28")));
    assert_eq!(policy.newborn_window_last_day(date("2023-11-30")), Some(date("2024-02-29")));
}

#[test]
fn anqing_2024() {
    check(
        "anqing-2024.toml",
        vec![
            case("in the period", adult(), "2023-09-01", CONCENTRATED, yuan("380"), on("2024-01-01")),
            case(
                "after the period: not described",
                adult(),
                "2024-01-05",
                PaymentClass::Unstated { missing: "sporadic" },
                awaiting("sporadic"),
                awaiting("sporadic"),
            ),
            // 90 days with the birth date as day 1: 2023-11-15 + 89 = 2024-02-12.
            case("born 2023, 90th day", baby("2023-11-15"), "2024-02-12", IN_WINDOW, yuan("380"), on("2024-01-01")),
            case(
                "born 2023, 91st day",
                baby("2023-11-15"),
                "2024-02-13",
                PaymentClass::NewbornLate,
                awaiting("sporadic.premium"),
                awaiting("newborn.late_coverage"),
            ),
            case("born 2024, 90th day", baby("2024-03-01"), "2024-05-29", IN_WINDOW, yuan("380"), on("2024-03-01")),
            case("back-payment in 2025", baby("2024-12-20"), "2025-01-10", BACK_PAYMENT, yuan("380"), on("2024-12-20")),
        ],
    );
}

#[test]
fn anqing_2023() {
    check(
        "anqing-2023.toml",
        vec![
            case("born Nov, paid Nov", baby("2023-11-15"), "2023-11-20", IN_WINDOW, yuan("350"), on("2023-11-15")),
            case(
                "paid in 2024, 90th day",
                baby("2023-11-15"),
                "2024-02-12",
                BACK_PAYMENT,
                yuan("350"),
                on("2023-11-15"),
            ),
            case(
                "paid in 2024, 91st day",
                baby("2023-11-15"),
                "2024-02-13",
                PaymentClass::Closed(Closed::AfterCoverageYear),
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
                Ruling::Refused { reason: Closed::AfterCoverageYear.reason() },
            ),
            case(
                "an adult: rules not stated",
                adult(),
                "2022-10-10",
                PaymentClass::Unstated { missing: "sporadic" },
                Ruling::AwaitingPolicy { missing: "sporadic" },
                Ruling::AwaitingPolicy { missing: "sporadic" },
            ),
        ],
    );
}

#[test]
fn anqing_baby_born_in_2023_pays_both_years() {
    // 既要交2023年度350元...也要交2024年度380元.
    let (year_2023, year_2024) = (load("anqing-2023.toml"), load("anqing-2024.toml"));
    let baby = baby("2023-11-15");
    let paid = date("2023-12-01");
    let first = year_2023.assess(paid, &baby);
    let second = year_2024.assess(paid, &baby);
    assert_eq!(first.covered(), Some(Period { from: date("2023-11-15"), until: date("2023-12-31") }));
    assert_eq!(second.covered(), Some(Period { from: date("2024-01-01"), until: date("2024-12-31") }));
    let total: i64 = [first.premium_due, second.premium_due].iter().filter_map(|d| d.known()).map(|m| m.fen()).sum();
    assert_eq!(total, 73_000);
}

#[test]
fn shanxi_2022_has_no_collection_rules() {
    let policy = load("shanxi-2022.toml");
    let assessment = policy.assess(date("2021-12-20"), &hardship("extreme_poverty"));
    assert_eq!(assessment.class, PaymentClass::Unstated { missing: "sporadic" });
    assert!(matches!(assessment.premium_due, Ruling::AwaitingPolicy { .. }));
}

#[test]
fn rule_kinds_in_one_place() {
    let year_start = date("2021-01-01");
    let birth = date("2020-12-25");
    let first = |rule, paid| first_covered_day(rule, year_start, date(paid), birth);
    assert_eq!(first(CoverageStart::CoverageYearStart, "2020-11-30"), year_start);
    assert_eq!(first(CoverageStart::FromBirth, "2021-01-10"), birth);
    assert_eq!(first(CoverageStart::WaitingDays { waiting_days: 60 }, "2021-04-10"), date("2021-06-09"));
    assert_eq!(first(CoverageStart::WaitingDays { waiting_days: 90 }, "2024-12-15"), date("2025-03-15"));
    assert_eq!(first(CoverageStart::WaitingDays { waiting_days: 60 }, "2024-01-01"), date("2024-03-01"));
    assert_eq!(first(CoverageStart::MonthStart { months_after: 0 }, "2021-05-31"), date("2021-05-01"));
    assert_eq!(first(CoverageStart::MonthStart { months_after: 1 }, "2021-12-31"), date("2022-01-01"));
    assert_eq!(first(CoverageStart::MonthStart { months_after: 3 }, "2021-11-15"), date("2022-02-01"));
    assert_eq!(month_start_after(date("2021-01-31"), 1), date("2021-02-01"));
    assert_eq!(window_last_day(Window::Days(90), date("2023-11-15")), date("2024-02-12"));
    assert_eq!(window_last_day(Window::Days(1), date("2023-11-15")), date("2023-11-15"));
    assert_eq!(window_last_day(Window::Months(3), date("2021-03-15")), date("2021-06-15"));
    assert_eq!(window_last_day(Window::Months(3), date("2021-11-30")), date("2022-02-28"));
}
