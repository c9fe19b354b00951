//! Coverage rules: how a policy sees a payment (class), what it owes, and
//! from which day it covers. Pure functions of the policy and plain facts;
//! each rule has one home here.

use super::model::{CoverageStart, Exemption, OnePayment, PayerGroup, Pays, Period, Policy, Window};
use chrono::{Datelike, Days, Months, NaiveDate};
use ledger::event::EnrolmentBasis;
use ledger::{Date, Money, RegionCode};

/// What the coverage projection knows about the person when a payment for
/// the policy's year arrives. Plain data: no TOML, no events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonFacts {
    pub birth_date: Date,
    /// How the person came to resident insurance (newborn, interrupted, …).
    pub basis: EnrolmentBasis,
    /// Hardship groups certified for this coverage year (group ids).
    pub hardship_groups: Vec<String>,
    /// The county (县级) the person belongs to, where a subsidy's split
    /// depends on it.
    pub county: Option<RegionCode>,
}

impl PersonFacts {
    /// An ordinary registration, no hardship group, county unknown.
    pub fn born(birth_date: Date) -> PersonFacts {
        PersonFacts { birth_date, basis: EnrolmentBasis::Standard, hardship_groups: Vec::new(), county: None }
    }
}

/// An answer that the policy may not be able to give yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ruling<T> {
    Known(T),
    /// The figure or rule is not published (Decision: unpublished amounts
    /// stay unset; the assessment stays open). `missing` names the field.
    AwaitingPolicy {
        missing: &'static str,
    },
    /// The policy does not let this payment buy this year.
    Refused {
        reason: &'static str,
    },
}

impl<T: Copy> Ruling<T> {
    pub fn known(self) -> Option<T> {
        match self {
            Ruling::Known(value) => Some(value),
            _ => None,
        }
    }
}

/// 应缴金额: the premium owed for the person-year, before any hardship
/// subsidy (the person's own share is this minus the subsidy).
pub type AmountDue = Ruling<Money>;
/// The first covered day (待遇享受起始日). It may fall after
/// [`Policy::covered_until`]: then the payment covers no day of the year.
pub type CoveredFrom = Ruling<Date>;

/// How the policy sees a payment for its coverage year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentClass {
    /// 集中征缴期; `extended`: in Guigang's hardship extension after it.
    Concentrated { extended: bool },
    /// 零星缴费 after the concentrated period.
    Sporadic,
    /// 新生儿 paid within the window from birth; `back_payment`: paid in the
    /// year after the coverage year (补缴出生当年).
    NewbornInWindow { back_payment: bool },
    /// 新生儿 paid after the window, in the coverage year.
    NewbornLate,
    /// 中断缴费 (for at least the policy's gap) paying after the period.
    Interrupted,
    /// Left employee insurance this calendar year (职工医保转城乡居民).
    FromEmployeeInsurance,
    /// The source exempts the person from its sporadic rule without saying
    /// what applies instead (Bijie 2025): the assessment awaits policy.
    Exempt(Exemption),
    /// The payment cannot buy this coverage year.
    Closed(Closed),
    /// The policy does not say how such a payment is treated.
    Unstated { missing: &'static str },
}

impl PayerGroup {
    /// Whether a person with `person`'s facts, whose payment the policy sees
    /// as `class`, is of this group.
    pub fn holds(self, class: PaymentClass, person: &PersonFacts) -> bool {
        match self {
            PayerGroup::Concentrated => matches!(class, PaymentClass::Concentrated { .. }),
            PayerGroup::Sporadic => class == PaymentClass::Sporadic,
            PayerGroup::Newborn => matches!(
                class,
                PaymentClass::NewbornInWindow { .. }
                    | PaymentClass::NewbornLate
                    | PaymentClass::Exempt(Exemption::Newborn)
            ),
            PayerGroup::NewbornInWindow => matches!(class, PaymentClass::NewbornInWindow { .. }),
            PayerGroup::NewbornLate => class == PaymentClass::NewbornLate,
            PayerGroup::Interrupted => class == PaymentClass::Interrupted,
            PayerGroup::EmployeeTransfer => class == PaymentClass::FromEmployeeInsurance,
            PayerGroup::Hardship => !person.hardship_groups.is_empty(),
        }
    }

    /// The group's name in the policy file and in notes (`newborn_late`).
    pub fn name(self) -> &'static str {
        match self {
            PayerGroup::Concentrated => "concentrated",
            PayerGroup::Sporadic => "sporadic",
            PayerGroup::Newborn => "newborn",
            PayerGroup::NewbornInWindow => "newborn_in_window",
            PayerGroup::NewbornLate => "newborn_late",
            PayerGroup::Interrupted => "interrupted",
            PayerGroup::EmployeeTransfer => "employee_transfer",
            PayerGroup::Hardship => "hardship",
        }
    }
}

/// Why a payment cannot buy the year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Before the first collection day of the year.
    BeforeCollection,
    /// After the coverage year (and not a newborn's back-payment).
    AfterCoverageYear,
    /// Outside the sporadic window (零星缴费期).
    OutsideSporadicWindow,
}

impl Closed {
    pub fn reason(self) -> &'static str {
        match self {
            Closed::BeforeCollection => "paid before collection for the year opened",
            Closed::AfterCoverageYear => "paid after the coverage year",
            Closed::OutsideSporadicWindow => "paid outside the sporadic window",
        }
    }
}

/// Everything the policy says about one payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub class: PaymentClass,
    pub premium_due: AmountDue,
    pub covered_from: CoveredFrom,
    pub covered_until: Date,
}

impl Assessment {
    /// The covered days, if the first covered day is known and within the
    /// year.
    pub fn covered(&self) -> Option<Period> {
        let from = self.covered_from.known()?;
        (from <= self.covered_until).then_some(Period { from, until: self.covered_until })
    }
}

impl Policy {
    /// Classifies a payment made on `paid_on` (the business date, UTC+8) for
    /// this policy's coverage year.
    pub fn classify_payment(&self, paid_on: Date, person: &PersonFacts) -> PaymentClass {
        if self.first_collection_day().is_some_and(|first| paid_on < first) {
            return PaymentClass::Closed(Closed::BeforeCollection);
        }
        if let Some(class) = self.newborn_in_window(paid_on, person) {
            return class;
        }
        if paid_on > self.coverage.until {
            return PaymentClass::Closed(Closed::AfterCoverageYear);
        }
        if let Some(extended) = self.in_concentrated(paid_on, person) {
            return PaymentClass::Concentrated { extended };
        }
        if self.newborn.is_some() && self.is_newborn(person, paid_on) {
            return PaymentClass::NewbornLate;
        }
        if self.employee_transfer.is_some() && left_employee_insurance_this_year(person, paid_on) {
            return PaymentClass::FromEmployeeInsurance;
        }
        if self.is_interrupted(person) {
            return PaymentClass::Interrupted;
        }
        self.classify_sporadic(paid_on, person)
    }

    /// 一次性缴纳: whether a payment on `paid_on` falls under a requirement
    /// to pay the year in one payment — everyone's (`premium.in_one_payment`),
    /// or that of a group of `in_one_payment_for` the person is in that day,
    /// the day within its dates.
    pub fn one_payment_required_of(&self, paid_on: Date, person: &PersonFacts) -> Option<OnePayment> {
        if self.premium.in_one_payment {
            return Some(OnePayment::Everyone);
        }
        if self.in_one_payment_for.is_empty() {
            return None;
        }
        let class = self.classify_payment(paid_on, person);
        self.in_one_payment_for
            .iter()
            .find(|rule| rule.paid.contains(paid_on) && rule.group.holds(class, person))
            .map(|rule| OnePayment::Group(*rule))
    }

    /// The premium owed for the person-year by a payment of `class` made on
    /// `paid_on`.
    pub fn amount_due(&self, class: PaymentClass, paid_on: Date) -> AmountDue {
        match class {
            PaymentClass::Concentrated { .. } => Ruling::Known(self.premium.individual),
            PaymentClass::NewbornInWindow { .. } => match &self.newborn {
                Some(newborn) => self.standard(newborn.pays),
                None => Ruling::AwaitingPolicy { missing: "newborn" },
            },
            PaymentClass::Sporadic
            | PaymentClass::NewbornLate
            | PaymentClass::Interrupted
            | PaymentClass::FromEmployeeInsurance => self.sporadic_premium(paid_on),
            PaymentClass::Exempt(_) => Ruling::AwaitingPolicy { missing: "sporadic.exempt" },
            PaymentClass::Closed(closed) => Ruling::Refused { reason: closed.reason() },
            PaymentClass::Unstated { missing } => Ruling::AwaitingPolicy { missing },
        }
    }

    /// The first covered day for a payment of `class` made on `paid_on`,
    /// never before the coverage year's first day.
    pub fn covered_from(&self, class: PaymentClass, paid_on: Date, person: &PersonFacts) -> CoveredFrom {
        let rule = match self.coverage_rule(class) {
            Ok(rule) => rule,
            Err(ruling) => return ruling,
        };
        let first = first_covered_day(rule, self.coverage.from, paid_on, person.birth_date);
        // Nobody is covered before being born: a baby born in the coverage
        // year and paid in the concentrated period is covered from birth.
        Ruling::Known(first.max(self.coverage.from).max(person.birth_date))
    }

    /// Class, premium due and covered days of one payment, together.
    pub fn assess(&self, paid_on: Date, person: &PersonFacts) -> Assessment {
        let class = self.classify_payment(paid_on, person);
        Assessment {
            class,
            premium_due: self.amount_due(class, paid_on),
            covered_from: self.covered_from(class, paid_on, person),
            covered_until: self.coverage.until,
        }
    }

    /// 个人缴费标准 + 财政补助标准: the stated full premium, else the sum, else
    /// awaiting the unpublished fiscal subsidy.
    pub fn full_premium(&self) -> AmountDue {
        if let Some(full) = self.premium.full {
            return Ruling::Known(full);
        }
        match self.premium.fiscal_subsidy.and_then(|fiscal| self.premium.individual.checked_add(fiscal)) {
            Some(full) => Ruling::Known(full),
            None => Ruling::AwaitingPolicy { missing: "premium.fiscal_subsidy" },
        }
    }

    /// The last day on which a newborn's payment is within the window.
    pub fn newborn_window_last_day(&self, birth_date: Date) -> Option<Date> {
        self.newborn.map(|newborn| window_last_day(newborn.window, birth_date))
    }

    /// 预参保登记作废: the first day on which an unpaid pre-registration is
    /// void (the day after the lapse window), if the policy has the rule.
    pub fn pre_registration_void_from(&self, birth_date: Date) -> Option<Date> {
        let lapse = self.newborn?.pre_registration_lapse?;
        Some(plus_days(window_last_day(lapse, birth_date), 1))
    }

    /// The sporadic window, stated or implied (the day after the last
    /// concentrated period to the end of the coverage year).
    pub fn sporadic_window(&self) -> Option<Period> {
        let sporadic = self.sporadic.as_ref()?;
        if sporadic.window.is_some() {
            return sporadic.window;
        }
        let last_period = self.concentrated.as_ref()?.periods.last()?;
        Some(Period { from: plus_days(last_period.until, 1), until: self.coverage.until })
    }

    fn standard(&self, pays: Pays) -> AmountDue {
        match pays {
            Pays::Individual => Ruling::Known(self.premium.individual),
            Pays::Full => self.full_premium(),
        }
    }

    fn sporadic_premium(&self, paid_on: Date) -> AmountDue {
        let band = self.sporadic.as_ref().and_then(|s| s.premium.iter().find(|band| band.paid.contains(paid_on)));
        match band {
            Some(band) => self.standard(band.pays),
            None => Ruling::AwaitingPolicy { missing: "sporadic.premium" },
        }
    }

    fn coverage_rule(&self, class: PaymentClass) -> Result<CoverageStart, CoveredFrom> {
        let missing = |missing| Err(Ruling::AwaitingPolicy { missing });
        match class {
            PaymentClass::Concentrated { .. } => {
                self.concentrated.as_ref().map(|c| c.coverage).map_or(missing("concentrated"), Ok)
            }
            PaymentClass::NewbornInWindow { .. } => {
                self.newborn.map(|n| n.in_window_coverage).map_or(missing("newborn"), Ok)
            }
            PaymentClass::NewbornLate => {
                self.newborn.and_then(|n| n.late_coverage).map_or(missing("newborn.late_coverage"), Ok)
            }
            PaymentClass::Sporadic => self.sporadic.as_ref().map(|s| s.coverage).map_or(missing("sporadic"), Ok),
            PaymentClass::Interrupted => self.interrupted.map(|i| i.coverage).map_or(missing("interrupted"), Ok),
            PaymentClass::FromEmployeeInsurance => {
                self.employee_transfer.map(|t| t.coverage).map_or(missing("employee_transfer"), Ok)
            }
            PaymentClass::Exempt(_) => missing("sporadic.exempt"),
            PaymentClass::Closed(closed) => Err(Ruling::Refused { reason: closed.reason() }),
            PaymentClass::Unstated { missing: field } => missing(field),
        }
    }

    /// The first day any payment for the year is taken, where known.
    fn first_collection_day(&self) -> Option<Date> {
        let concentrated = self.concentrated.as_ref().and_then(|c| c.periods.first()).map(|p| p.from);
        concentrated.or_else(|| self.sporadic.as_ref().and_then(|s| s.window).map(|w| w.from))
    }

    /// `Some(extended)` when paid in a concentrated period, or in the
    /// hardship extension by a person holding a hardship group.
    fn in_concentrated(&self, paid_on: Date, person: &PersonFacts) -> Option<bool> {
        let concentrated = self.concentrated.as_ref()?;
        if concentrated.periods.iter().any(|p| p.contains(paid_on)) {
            return Some(false);
        }
        let last_end = concentrated.periods.last()?.until;
        let extended = concentrated.extended_until_for_hardship?;
        let in_extension = last_end < paid_on && paid_on <= extended && !person.hardship_groups.is_empty();
        in_extension.then_some(true)
    }

    /// A newborn for this coverage year: born in it or in the year before,
    /// on or before the payment.
    fn is_newborn(&self, person: &PersonFacts, paid_on: Date) -> bool {
        let year = i32::from(self.coverage_year);
        let birth = person.birth_date;
        birth <= paid_on && (year - 1..=year).contains(&birth.year())
    }

    fn newborn_in_window(&self, paid_on: Date, person: &PersonFacts) -> Option<PaymentClass> {
        let newborn = self.newborn?;
        if !self.is_newborn(person, paid_on) || paid_on > window_last_day(newborn.window, person.birth_date) {
            return None;
        }
        if paid_on <= self.coverage.until {
            return Some(PaymentClass::NewbornInWindow { back_payment: false });
        }
        // 出生跨年度: born in the coverage year, paying it in the next one.
        let born_in_year = person.birth_date.year() == i32::from(self.coverage_year);
        Some(if newborn.back_payment && born_in_year {
            PaymentClass::NewbornInWindow { back_payment: true }
        } else {
            PaymentClass::Closed(Closed::AfterCoverageYear)
        })
    }

    fn is_interrupted(&self, person: &PersonFacts) -> bool {
        let (Some(interrupted), EnrolmentBasis::Interrupted { last_paid_year }) = (&self.interrupted, &person.basis)
        else {
            return false;
        };
        let gap_years = self.coverage_year.saturating_sub(*last_paid_year).saturating_sub(1);
        gap_years >= interrupted.min_gap_years
    }

    fn classify_sporadic(&self, paid_on: Date, person: &PersonFacts) -> PaymentClass {
        let Some(sporadic) = &self.sporadic else {
            return PaymentClass::Unstated { missing: "sporadic" };
        };
        let Some(window) = self.sporadic_window() else {
            return PaymentClass::Unstated { missing: "sporadic.window" };
        };
        if !window.contains(paid_on) {
            return PaymentClass::Closed(Closed::OutsideSporadicWindow);
        }
        let exempt = |exemption| sporadic.exempt.contains(&exemption);
        if exempt(Exemption::Newborn) && self.is_newborn(person, paid_on) {
            return PaymentClass::Exempt(Exemption::Newborn);
        }
        if exempt(Exemption::Hardship) && !person.hardship_groups.is_empty() {
            return PaymentClass::Exempt(Exemption::Hardship);
        }
        PaymentClass::Sporadic
    }
}

/// "在当年重新参加": left employee insurance in the calendar year of the
/// payment, on or before it.
fn left_employee_insurance_this_year(person: &PersonFacts, paid_on: Date) -> bool {
    match person.basis {
        EnrolmentBasis::FromEmployeeInsurance { left_on } => left_on <= paid_on && left_on.year() == paid_on.year(),
        _ => false,
    }
}

/// The first covered day a rule gives, before clamping to the coverage
/// year. The one home of every coverage-start rule.
pub fn first_covered_day(rule: CoverageStart, coverage_year_start: Date, paid_on: Date, birth_date: Date) -> Date {
    match rule {
        CoverageStart::CoverageYearStart => coverage_year_start,
        // Decision (domain.md): the payment date is day 1, so day N is
        // paid_on + (N − 1) and cover starts the day after: paid_on + N.
        CoverageStart::WaitingDays { waiting_days } => plus_days(paid_on, u64::from(waiting_days)),
        CoverageStart::MonthStart { months_after } => month_start_after(paid_on, u32::from(months_after)),
        CoverageStart::FromBirth => birth_date,
    }
}

/// The last day inside a window counted from `start` (a birth date).
///
/// Decision: days count `start` as day 1 (as the waiting periods do), so
/// "90天内" ends on start + 89. Months end on the same day of the month N
/// months later, or that month's last day if it has no such day (民法典
/// 第二百零二条: 到期月的对应日为期间的最后一日; 没有对应日的, 月末日).
pub fn window_last_day(window: Window, start: Date) -> Date {
    match window {
        Window::Days(days) => plus_days(start, u64::from(days.saturating_sub(1))),
        Window::Months(months) => {
            Date(start.0.checked_add_months(Months::new(u32::from(months))).unwrap_or(NaiveDate::MAX))
        }
    }
}

/// The 1st of the month `months` after the month of `date` (0: its own).
pub fn month_start_after(date: Date, months: u32) -> Date {
    let first = date.0.with_day(1).unwrap_or(date.0);
    Date(first.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX))
}

fn plus_days(date: Date, days: u64) -> Date {
    Date(date.0.checked_add_days(Days::new(days)).unwrap_or(NaiveDate::MAX))
}
