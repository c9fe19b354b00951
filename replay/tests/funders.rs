//! The auditor's report counts a subsidy refund against the funders of the
//! grant it names only: a 建档立卡 grant split province : city : county and
//! an orphan's grant paid by the medical assistance fund in one year, the
//! orphan's grant refunded.

use ledger::event::{
    EnrolmentBasis, Event, Funder, PaymentRef, PersonRegistered, RefundDestination, RefundIssued, SubsidyGranted,
    SubsidyPart,
};
use ledger::{Date, Identity, Money, RegionCode};
use projections::coverage::Coverage;
use projections::{LedgerTotals, Projection};
use replay::audit::{self, Rebuilt};

#[path = "../../projections/tests/common/mod.rs"]
mod common;

use common::envelope;

const YEAR: u16 = 2021;

fn person() -> Identity {
    let born = chrono::NaiveDate::from_ymd_opt(1980, 5, 5).expect("a date");
    Identity::resident(RegionCode::new(520203).expect("a region"), born, 11)
}

fn money(fen: i64) -> Money {
    Money::from_fen(fen).expect("test amount")
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

fn grant(group: &str, parts: &[(Funder, i64)]) -> Event {
    Event::SubsidyGrantedV1(SubsidyGranted {
        person: person(),
        coverage_year: YEAR,
        group: group.into(),
        parts: parts.iter().map(|(funder, fen)| SubsidyPart { funder: funder.clone(), amount: money(*fen) }).collect(),
        granted_on: date("2020-12-01"),
    })
}

#[test]
fn a_refund_of_one_groups_grant_goes_back_to_that_grants_funders_in_the_report() {
    let events = [
        Event::PersonRegisteredV1(PersonRegistered {
            person: person(),
            name: "测试".into(),
            region: RegionCode::new(520203).expect("region"),
            birth_date: date("1980-05-05"),
            registered_on: date("2020-11-01"),
            basis: EnrolmentBasis::Standard,
        }),
        grant("registered_poor", &[(Funder::Province, 5_000), (Funder::City, 2_000), (Funder::County, 3_000)]),
        grant("orphan", &[(Funder::MedicalAssistanceFund, 28_000)]),
        Event::RefundIssuedV1(RefundIssued {
            person: person(),
            coverage_year: YEAR,
            refund_ref: "TK1".into(),
            payment: PaymentRef { channel: "subsidy".into(), channel_ref: "orphan".into() },
            amount: money(28_000),
            destination: RefundDestination::Funders,
            refunded_at: "2021-03-01 10:00:00".parse().expect("a time"),
            reason: "资助退回".into(),
        }),
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
