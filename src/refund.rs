//! `yibao refund`: money back to where it came from, for any payment: the
//! payment's channel, the personal account for a proxy payment, the funders
//! (in the grants' split) for a subsidy. Partial refunds are allowed; the
//! refunds of a payment never exceed it (`projections::family::decide`).

use crate::commands::open;
use crate::exit::BadInput;
use crate::family::{projections_at_head, record};
use crate::lookup::parse_identity;
use crate::single::{flag_value, FlagNames};
use anyhow::Result;
use ledger::event::{PaymentRef, RefundDestination, RefundIssued};
use ledger::{BeijingTime, Event, OpenMode};
use projections::coverage::PaymentKind;
use std::path::Path;

const REFUND_FLAGS: FlagNames = &[
    ("person", "--id"),
    ("coverage_year", "--year"),
    ("payment", "--payment"),
    ("payment.channel", "--payment"),
    ("payment.channel_ref", "--payment"),
    ("amount", "--amount"),
    ("reason", "--reason"),
    ("refund_ref", "--ref"),
    ("refunded_at", "--at"),
];

/// The flags of `yibao refund`.
#[derive(clap::Args)]
pub struct RefundArgs {
    /// ID number of the insured person.
    #[arg(long)]
    id: String,
    /// Coverage year of the payment.
    #[arg(long)]
    year: u16,
    /// The payment returned: CHANNEL:REF (`wechat:WX2024…`), a proxy
    /// payment by its application id (`proxy:BJ-DJ-…`), or the year's
    /// subsidies (`subsidy:GROUP`).
    #[arg(long)]
    payment: String,
    /// Amount in yuan; at most what is left of the payment.
    #[arg(long)]
    amount: String,
    /// Why (退费原因), e.g. 重复缴费.
    #[arg(long)]
    reason: String,
    /// The refund's own reference (default: REF-R1, REF-R2, …).
    #[arg(long = "ref")]
    refund_ref: Option<String>,
    /// When it was refunded (default: now).
    #[arg(long)]
    at: Option<String>,
}

pub fn run(data: &Path, args: RefundArgs) -> Result<()> {
    let person = parse_identity(&args.id)?;
    let Some((channel, reference)) = args.payment.split_once(':').filter(|(c, r)| !c.is_empty() && !r.is_empty())
    else {
        return Err(BadInput(format!("--payment: `{}` is not CHANNEL:REF (e.g. wechat:WX2024…)", args.payment)).into());
    };
    // Canonical before the lookups below, as the fact will be (`WeChat:WX1 ` is `wechat:WX1`).
    let flag = |e: ledger::event::FieldError| BadInput(format!("--payment: {}", e.reason));
    let channel = ledger::text::channel("payment.channel", channel).map_err(flag)?;
    let reference = ledger::text::identifier("payment.channel_ref", reference).map_err(flag)?;
    let payment = PaymentRef { channel: channel.clone(), channel_ref: reference.clone() };
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    // Where the money goes follows from where it came from; a payment the
    // year does not have is refused by the decision below.
    let destination = match coverage.refund_target(&person, args.year, &payment).map(|t| t.kind) {
        Some(PaymentKind::Proxy { application_id }) => match family.application(&application_id) {
            Some(application) => RefundDestination::PersonalAccount(application.holder.clone()),
            None => return Err(BadInput(format!("no proxy application {application_id} in the ledger")).into()),
        },
        Some(PaymentKind::Subsidy) => RefundDestination::Funders,
        Some(PaymentKind::Channel) | None => RefundDestination::OriginalChannel,
    };
    let refund_ref = args.refund_ref.unwrap_or_else(|| {
        (1..=1_000)
            .map(|n| format!("{reference}-R{n}"))
            .find(|r| coverage.refund_recorded(&person, args.year, &channel, r).is_none())
            .unwrap_or_else(|| format!("{reference}-R{}", BeijingTime::now().0))
    });
    let refunded_at = match &args.at {
        Some(text) => flag_value(REFUND_FLAGS, "refunded_at", text)?,
        None => BeijingTime::now(),
    };
    let event = Event::RefundIssuedV1(RefundIssued {
        person: person.clone(),
        coverage_year: args.year,
        refund_ref: refund_ref.clone(),
        payment,
        amount: flag_value(REFUND_FLAGS, "amount", &args.amount)?,
        destination: destination.clone(),
        refunded_at,
        reason: args.reason,
    });
    record(&log, &coverage, &family, event, "cli:refund", REFUND_FLAGS)?;
    drop(coverage);
    let coverage = crate::lookup::coverage(data, &log)?;
    if let Some(view) = coverage.person_year(&person, args.year) {
        let split: Vec<String> =
            view.refunds.to_funders_by_funder.iter().map(|(funder, amount)| format!("{funder} {amount}")).collect();
        outln!("refund {refund_ref} to {}", destination_text(&destination));
        if !split.is_empty() {
            outln!("  back to the funders in the grants' split: {}", split.join(", "));
        }
        outln!(
            "{} {}: now {}; net received {}, refunded {}",
            person.masked(),
            args.year,
            view.state.words(),
            view.net_received,
            view.refunds.total
        );
    }
    Ok(())
}

fn destination_text(destination: &RefundDestination) -> String {
    match destination {
        RefundDestination::OriginalChannel => "original channel".into(),
        RefundDestination::Funders => "funders".into(),
        RefundDestination::PersonalAccount(holder) => format!("the personal account of {}", holder.masked()),
    }
}
