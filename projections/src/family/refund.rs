//! 原渠道退回: a refund goes back where the payment's money came from. The
//! one home of that rule: the decision checks a refund fact's destination
//! against it, and the refund operation builds the fact's destination
//! from it.

use super::decide::{refuse, Refusal};
use super::Family;
use crate::coverage::PaymentKind;
use ledger::event::RefundDestination;

/// Where a refund of a payment of `kind` goes: through the payment's own
/// channel for a payment by the person, by another payer or by a collector;
/// to the personal account of the application's holder for a proxy payment
/// (职工医保个人账户); to the funders, in the grants' split, for the year's
/// subsidies. `None` for a proxy payment whose application `family` does
/// not hold.
pub fn refund_destination(family: &Family, kind: &PaymentKind) -> Option<RefundDestination> {
    match kind {
        PaymentKind::Channel => Some(RefundDestination::OriginalChannel),
        PaymentKind::Subsidy => Some(RefundDestination::Funders),
        PaymentKind::Proxy { application_id } => family
            .application(application_id)
            .map(|application| RefundDestination::PersonalAccount(application.holder.clone())),
    }
}

/// A refund fact's destination against [`refund_destination`].
pub(super) fn check_destination(
    family: &Family,
    kind: &PaymentKind,
    destination: &RefundDestination,
    channel: &str,
    reference: &str,
) -> Result<(), Refusal> {
    let wrong = |from: String, to: String| {
        Err(refuse(
            "destination",
            format!("payment {channel}/{reference} came from {from}: the refund goes back there ({to})"),
        ))
    };
    match refund_destination(family, kind) {
        Some(expected) if expected == *destination => Ok(()),
        Some(RefundDestination::OriginalChannel) => wrong(format!("channel {channel}"), "original_channel".into()),
        Some(RefundDestination::Funders) => {
            wrong("the subsidy's funders".into(), "funders, in the grants' split".into())
        }
        Some(RefundDestination::PersonalAccount(holder)) => wrong(
            format!("the personal account of {}", holder.masked()),
            format!("{{\"personal_account\": \"{holder}\"}}"),
        ),
        // The application is not in the family projection: any personal account.
        None if matches!(destination, RefundDestination::PersonalAccount(_)) => Ok(()),
        None => wrong("an employee personal account".into(), "personal_account".into()),
    }
}
