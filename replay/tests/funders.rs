//! The auditor's report counts a subsidy refund against the funders of the
//! grant it names only: a 建档立卡 grant split province : city : county and
//! an orphan's grant paid by the medical assistance fund in one year, the
//! orphan's grant refunded.

use common::envelope;
use common::subsidy::{grant, refund, registered, YEAR};
use ledger::event::{Event, Funder};
use projections::coverage::Coverage;
use projections::{LedgerTotals, Projection};
use replay::audit::{self, Rebuilt};

#[path = "../../projections/tests/common/mod.rs"]
mod common;

#[test]
fn a_refund_of_one_groups_grant_goes_back_to_that_grants_funders_in_the_report() {
    let events: [Event; 4] = [
        registered(),
        grant("registered_poor", &[(Funder::Province, 5_000), (Funder::City, 2_000), (Funder::County, 3_000)]),
        grant("orphan", &[(Funder::MedicalAssistanceFund, 28_000)]),
        refund(1, "orphan".into(), 28_000),
    ];
    let (mut coverage, mut totals) = (Coverage::new(), LedgerTotals::default());
    for (index, event) in events.into_iter().enumerate() {
        let envelope = envelope(index as u64 + 1, event);
        coverage.apply(&envelope);
        totals.apply(&envelope);
    }
    let rebuilt = Rebuilt { coverage, totals, position: 4, head_hash: [0; 32], n_events: 4 };
    let report = audit::report(&rebuilt, YEAR, None, None).expect("every figure is money");
    let refunded: Vec<(&str, i64)> =
        report.refunded.to_funders_by_funder.iter().map(|(funder, amount)| (funder.as_str(), amount.fen())).collect();
    assert_eq!(refunded, [("medical_assistance_fund", 28_000)], "{report:#?}");
    assert_eq!(report.refunded.to_funders.fen(), 28_000);
    let received = |funder: &str| report.received.paid.subsidy.get(funder).map_or(0, |m| m.fen());
    assert_eq!((received("province"), received("city"), received("county")), (5_000, 2_000, 3_000));
}
