//! Refunds (退费) as an operation: money back to where it came from, for
//! any payment. The destination follows from the payment's source by the
//! one rule, `projections::family::refund_destination`, which the decision
//! checks every refund fact against; partial refunds are allowed, and the
//! refunds of a payment never exceed it (`projections::family::decide`).

use crate::error::{Classified, Kind, StorageError};
use crate::family::{refusal_message, Writer};
use crate::handle::{Ledger, Projections, RecordError, Recorded};
use ledger::event::{FieldError, PaymentRef, RefundDestination, RefundIssued};
use ledger::{BeijingTime, Event, Identity, LogBackend, Money};
use projections::coverage::{Coverage, CoverageState, MoneyOutOfRange};
use projections::family::{refund_destination, Family, Refusal};
use std::collections::BTreeMap;

/// A refund as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    pub person: Identity,
    pub coverage_year: u16,
    /// The payment returned, canonical: `CHANNEL:REF`, `proxy:APPLICATION`,
    /// or the year's subsidies (`subsidy:GROUP`).
    pub payment: PaymentRef,
    pub amount: Money,
    /// 退费原因.
    pub reason: String,
    /// The refund's own reference; `None`: the payment's reference with
    /// `-R1`, `-R2`, … (the first not yet used).
    pub refund_ref: Option<String>,
    pub refunded_at: BeijingTime,
}

/// What a refund recorded, and the person-year after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refunded {
    pub refund_ref: String,
    pub destination: RefundDestination,
    pub recorded: Recorded,
    /// The person-year after the refund (none if the person is unknown).
    pub after: Option<YearAfter>,
}

/// The figures of the person-year after a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YearAfter {
    pub state: CoverageState,
    pub net_received: Money,
    pub refunded: Money,
    /// What went back to each funder of a subsidy, in the grants' split.
    pub to_funders_by_funder: BTreeMap<String, Money>,
}

/// A refund failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefundError {
    /// A field fails the edge's checks (canonical text, a known channel, limits).
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    /// The rules refuse the refund (no such payment, above what is left,
    /// the wrong destination, a reference taken).
    #[error("{}", refusal_message(.0))]
    Refused(Refusal),
    /// A proxy payment whose application the family projection does not hold.
    #[error("no proxy application {application_id} in the ledger")]
    UnknownApplication { application_id: String },
    /// The refund is recorded, but a figure of the person-year after it is
    /// no amount of money: never shown as 0.00.
    #[error("the refund is recorded at position {position}, but the person-year after it has no figures")]
    MoneyOutOfRange {
        position: u64,
        #[source]
        source: MoneyOutOfRange,
    },
    #[error(transparent)]
    Channels(#[from] crate::channels::ChannelsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<RecordError> for RefundError {
    fn from(error: RecordError) -> RefundError {
        match error {
            RecordError::Field(error) => RefundError::Field(error),
            RecordError::Refused(refusal) => RefundError::Refused(refusal),
            RecordError::Channels(error) => RefundError::Channels(error),
            RecordError::Storage(error) => RefundError::Storage(error),
        }
    }
}

impl Classified for RefundError {
    fn kind(&self) -> Kind {
        match self {
            RefundError::Field(_) | RefundError::Channels(_) => Kind::BadInput,
            RefundError::Refused(_) => Kind::Refused,
            RefundError::UnknownApplication { .. } => Kind::NotFound,
            RefundError::MoneyOutOfRange { .. } => Kind::Failure,
            RefundError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            RefundError::Field(error) => Some(error.field),
            RefundError::Refused(refusal) => refusal.field,
            RefundError::UnknownApplication { .. } => Some("payment"),
            RefundError::Channels(_) | RefundError::MoneyOutOfRange { .. } | RefundError::Storage(_) => None,
        }
    }
}

/// Where a refund of `payment` goes: its source, by the one rule. A
/// payment the person-year does not have goes nowhere yet: the decision
/// refuses it, naming the payment.
pub fn destination(
    coverage: &Coverage,
    family: &Family,
    person: &Identity,
    coverage_year: u16,
    payment: &PaymentRef,
) -> Result<RefundDestination, RefundError> {
    let Some(target) = coverage.refund_target(person, coverage_year, payment) else {
        return Ok(RefundDestination::OriginalChannel);
    };
    // Only a proxy payment has no destination without its application,
    // and its reference is the application's id.
    refund_destination(family, &target.kind)
        .ok_or_else(|| RefundError::UnknownApplication { application_id: payment.channel_ref.clone() })
}

/// Most default references tried before a time-stamped one.
const MAX_DEFAULT_REFS: u32 = 1_000;

/// The payment's reference with `-R1`, `-R2`, …: the first the person-year
/// has not recorded under the payment's channel.
pub fn default_refund_ref(coverage: &Coverage, person: &Identity, coverage_year: u16, payment: &PaymentRef) -> String {
    let reference = &payment.channel_ref;
    (1..=MAX_DEFAULT_REFS)
        .map(|n| format!("{reference}-R{n}"))
        .find(|r| coverage.refund_recorded(person, coverage_year, &payment.channel, r).is_none())
        .unwrap_or_else(|| format!("{reference}-R{}", BeijingTime::now().0))
}

/// Builds the refund fact (destination by the one rule, default reference)
/// and records it through the one path for a rule-decided fact.
pub fn record<L: LogBackend + ?Sized>(
    writer: &Writer<'_, L>,
    request: RefundRequest,
    actor: &str,
) -> Result<(RefundIssued, Recorded), RefundError> {
    let (coverage, person, year) = (writer.coverage, &request.person, request.coverage_year);
    let destination = destination(coverage, writer.family, person, year, &request.payment)?;
    let refund_ref = request.refund_ref.unwrap_or_else(|| default_refund_ref(coverage, person, year, &request.payment));
    let refund = RefundIssued {
        person: request.person,
        coverage_year: request.coverage_year,
        refund_ref,
        payment: request.payment,
        amount: request.amount,
        destination,
        refunded_at: request.refunded_at,
        reason: request.reason,
    };
    let recorded = writer.record(Event::RefundIssuedV1(refund.clone()), actor)?;
    Ok((refund, recorded))
}

/// `yibao refund`: the refund recorded on the ledger, and the person-year
/// after it.
pub fn refund(ledger: &Ledger, request: RefundRequest, actor: &str) -> Result<Refunded, RefundError> {
    // A proxy payment is refunded to the account its application debited.
    let application = (request.payment.channel == "proxy").then_some(request.payment.channel_ref.as_str());
    let at: Projections = ledger.projections_of_person(&request.person, application.as_slice())?;
    let writer = Writer::of(ledger, &at)?;
    let (refund, recorded) = record(&writer, request, actor)?;
    drop(at);
    let coverage = ledger.person_coverage(&refund.person)?;
    let view = coverage
        .person_year(&refund.person, refund.coverage_year)
        .map_err(|source| RefundError::MoneyOutOfRange { position: recorded.position(), source })?;
    let after = view.map(|view| YearAfter {
        state: view.state,
        net_received: view.net_received,
        refunded: view.refunds.total,
        to_funders_by_funder: view.refunds.to_funders_by_funder.clone(),
    });
    Ok(Refunded { refund_ref: refund.refund_ref, destination: refund.destination, recorded, after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::tests::{demo_ledger, HOLDER, MOTHER};
    use projections::family::{decide, Refusal};

    /// 李娜's 2026 premium, paid by 张伟 for her.
    const PAID_BY_ANOTHER: &str = r#"{"type": "payment_received", "v": 1, "person": "520521199007012242", "coverage_year": 2026, "amount": "400.00", "channel": "wechat", "channel_ref": "WX-OTHER-1", "paid_at": "2025-10-05 09:30:00", "payer": {"other": "520502198503121233"}}"#;

    fn payment(text: &str) -> PaymentRef {
        let (channel, channel_ref) = text.split_once(':').expect("CHANNEL:REF");
        PaymentRef { channel: channel.into(), channel_ref: channel_ref.into() }
    }

    #[test]
    fn a_refund_goes_back_to_the_payers_source_by_the_one_rule_the_decision_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &[PAID_BY_ANOTHER]);
        let at = ledger.projections().expect("projections");
        let holder: Identity = HOLDER.parse().expect("an ID");
        let cases = [
            (
                "the person",
                "520502198503121233",
                2025,
                "wechat:WX20241005093012001",
                RefundDestination::OriginalChannel,
            ),
            ("another payer", "520521199007012242", 2026, "wechat:WX-OTHER-1", RefundDestination::OriginalChannel),
            (
                "a collector",
                "520523200112308406",
                2025,
                "village_collector:QXG-DS-2024-0931",
                RefundDestination::OriginalChannel,
            ),
            ("the family account", MOTHER, 2025, "proxy:BJ-DJ-2024-000101", RefundDestination::PersonalAccount(holder)),
            ("a subsidy's funders", "520526196909097319", 2025, "subsidy:extreme_poverty", RefundDestination::Funders),
        ];
        for (source, person, year, paid, expected) in cases {
            let person: Identity = person.parse().expect("an ID");
            let payment = payment(paid);
            let found = destination(&at.coverage, &at.family, &person, year, &payment).expect("a destination");
            assert_eq!(found, expected, "paid by {source}");
            // The decision holds a refund fact to the same rule: any other destination is refused.
            let refund = |destination| {
                Event::RefundIssuedV1(RefundIssued {
                    person: person.clone(),
                    coverage_year: year,
                    refund_ref: "TK-T".into(),
                    payment: payment.clone(),
                    amount: "1".parse().expect("money"),
                    destination,
                    refunded_at: "2025-11-01 10:00:00".parse().expect("a time"),
                    reason: "退费".into(),
                })
            };
            // (The demo's collector payment is refunded whole already: that refusal is the amount's.)
            let accepted = decide(&at.family, &at.coverage, &refund(expected.clone()));
            assert!(
                !matches!(accepted, Err(Refusal { field: Some("destination"), .. })),
                "paid by {source}: {accepted:?}"
            );
            let wrong = if expected == RefundDestination::Funders {
                RefundDestination::OriginalChannel
            } else {
                RefundDestination::Funders
            };
            let refused = decide(&at.family, &at.coverage, &refund(wrong));
            assert!(
                matches!(refused, Err(Refusal { field: Some("destination"), .. })),
                "paid by {source}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_refund_of_a_proxy_payment_is_recorded_to_the_holders_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &[]);
        let request = RefundRequest {
            person: MOTHER.parse().expect("an ID"),
            coverage_year: 2025,
            payment: payment("proxy:BJ-DJ-2024-000101"),
            amount: "400".parse().expect("money"),
            reason: "退费".into(),
            refund_ref: None,
            refunded_at: "2025-01-10 10:00:00".parse().expect("a time"),
        };
        let refunded = refund(&ledger, request, "test").expect("refunded");
        assert_eq!(refunded.refund_ref, "BJ-DJ-2024-000101-R1");
        assert_eq!(refunded.destination, RefundDestination::PersonalAccount(HOLDER.parse().expect("an ID")));
        assert!(matches!(refunded.recorded, Recorded::Appended { .. }), "{:?}", refunded.recorded);
        let after = refunded.after.expect("the person-year after");
        assert_eq!(after.refunded, "400".parse().expect("money"));
    }

    /// Two payments of the largest amount take the year's money beyond any
    /// amount: the refund is recorded (the decision needs no figure of the
    /// year), and the person-year after it is the error naming it, a
    /// failure, never figures of 0.00.
    #[test]
    fn a_refund_in_a_year_whose_money_is_no_amount_is_recorded_and_names_the_year() {
        let largest = Money::from_fen(Money::MAX_FEN).expect("the largest amount");
        let paid =
            |reference: &str| PAID_BY_ANOTHER.replace("400.00", &largest.to_string()).replace("WX-OTHER-1", reference);
        let (first, second) = (paid("WX-MAX-1"), paid("WX-MAX-2"));
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &[&first, &second]);
        let head_before = ledger.log().durable_head().position;
        let request = RefundRequest {
            person: "520521199007012242".parse().expect("an ID"),
            coverage_year: 2026,
            payment: payment("wechat:WX-MAX-1"),
            amount: "1".parse().expect("money"),
            reason: "退费".into(),
            refund_ref: None,
            refunded_at: "2025-11-01 10:00:00".parse().expect("a time"),
        };
        let error = refund(&ledger, request, "test").expect_err("no figures after");
        let text =
            format!("{}: {}", error, std::error::Error::source(&error).map(|e| e.to_string()).unwrap_or_default());
        assert_eq!(error.kind(), Kind::Failure, "{text}");
        assert!(
            matches!(error, RefundError::MoneyOutOfRange { position, .. } if position == head_before + 1),
            "{text}"
        );
        assert!(
            text.contains("person-year 520521********2242 2026: ") && text.contains("not an amount of money"),
            "{text}"
        );
        assert_eq!(ledger.log().durable_head().position, head_before + 1, "the refund is recorded");
    }
}
