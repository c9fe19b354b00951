//! The wording of notes: payment classes and coverage-start rules as a
//! person reads them. Describes only; every date and amount comes from the
//! policy module.

use super::flows::Settlement;
use crate::policy::{CoverageStart, PaymentClass, Policy, Ruling};
use ledger::{Date, Money};
use std::collections::BTreeMap;

/// `province 10.00, city 4.00`.
pub(super) fn by_funder(parts: &BTreeMap<String, Money>) -> String {
    parts.iter().map(|(funder, amount)| format!("{funder} {amount}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn class_name(class: PaymentClass) -> &'static str {
    match class {
        PaymentClass::Concentrated { extended: false } => "concentrated",
        PaymentClass::Concentrated { extended: true } => "concentrated_extended",
        PaymentClass::Sporadic => "sporadic",
        PaymentClass::NewbornInWindow { back_payment: false } => "newborn_in_window",
        PaymentClass::NewbornInWindow { back_payment: true } => "newborn_back_payment",
        PaymentClass::NewbornLate => "newborn_late",
        PaymentClass::Interrupted => "interrupted",
        PaymentClass::FromEmployeeInsurance => "from_employee_insurance",
        PaymentClass::Exempt(_) => "exempt",
        PaymentClass::Closed(_) => "closed",
        PaymentClass::Unstated { .. } => "unstated",
    }
}

/// "sporadic payment on 2025-04-10: full premium 1070.00, covered from
/// 2025-07-09 (90 waiting days)".
pub(super) fn settling_note(policy: &Policy, class: PaymentClass, settled: Settlement, from: Date) -> String {
    let premium = policy.premium();
    let kind = if settled.premium_due == premium.individual {
        "individual part"
    } else if policy.full_premium() == Ruling::Known(settled.premium_due) {
        "full premium"
    } else {
        "premium"
    };
    let (on, due, words) = (settled.on, settled.premium_due, Spaced(class_name(class)));
    // Written once, without pieces of its own: every full view of a paid
    // year has this note.
    match rule_of(policy, class) {
        Some(rule) => format!("{words} payment on {on}: {kind} {due}, covered from {from} ({})", describe(rule)),
        None => format!("{words} payment on {on}: {kind} {due}, covered from {from}"),
    }
}

/// A class name as words (`newborn in window`).
struct Spaced(&'static str);

impl std::fmt::Display for Spaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, word) in self.0.split('_').enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}

/// The coverage-start rule the policy names for a class, for the note only
/// (the date itself comes from `Policy::assess`).
pub(super) fn rule_of(policy: &Policy, class: PaymentClass) -> Option<CoverageStart> {
    match class {
        PaymentClass::Concentrated { .. } => policy.concentrated().map(|c| c.coverage),
        PaymentClass::Sporadic => policy.sporadic().map(|s| s.coverage),
        PaymentClass::NewbornInWindow { .. } => policy.newborn().map(|n| n.in_window_coverage),
        PaymentClass::NewbornLate => policy.newborn().and_then(|n| n.late_coverage),
        PaymentClass::Interrupted => policy.interrupted().map(|i| i.coverage),
        PaymentClass::FromEmployeeInsurance => policy.employee_transfer().map(|t| t.coverage),
        PaymentClass::Exempt(_) | PaymentClass::Closed(_) | PaymentClass::Unstated { .. } => None,
    }
}

pub(super) fn describe(rule: CoverageStart) -> String {
    match rule {
        CoverageStart::CoverageYearStart => "from the start of the coverage year".into(),
        CoverageStart::WaitingDays { waiting_days } => format!("{waiting_days} waiting days"),
        CoverageStart::MonthStart { months_after: 0 } => "from the 1st of the payment month".into(),
        CoverageStart::MonthStart { months_after: 1 } => "from the 1st of the next month".into(),
        CoverageStart::MonthStart { months_after } => {
            let suffix = match months_after {
                2 => "nd",
                3 => "rd",
                _ => "th",
            };
            format!("from the 1st of the {months_after}{suffix} month after the payment month")
        }
        CoverageStart::FromBirth => "from the date of birth".into(),
    }
}
