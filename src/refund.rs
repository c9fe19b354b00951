//! `yibao refund`: money back to where it came from, for any payment: the
//! payment's channel, the personal account for a proxy payment, the funders
//! (in the grants' split) for a subsidy. An adapter: flags to a
//! `RefundRequest`, `operations::refund`, the answer as text.

use crate::exit::{classified, BadInput};
use crate::lookup::parse_identity;
use crate::single::{field_error, flag_value, FlagNames};
use anyhow::Result;
use ledger::event::{PaymentRef, RefundDestination};
use ledger::{BeijingTime, OpenMode};
use operations::refund::{RefundError, RefundRequest};
use operations::Ledger;
use operations::Location;
use operations::StorageError;

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
    /// payment by its application id (`proxy:BJ-DJ-…`), the year's grants
    /// of a group (`subsidy:GROUP`), or one grant by its log position
    /// (`subsidy:GROUP@POSITION`): back to those grants' funders only.
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

pub fn run(location: &Location, args: RefundArgs) -> Result<()> {
    let person = parse_identity(&args.id)?;
    let Some((channel, reference)) = args.payment.split_once(':').filter(|(c, r)| !c.is_empty() && !r.is_empty())
    else {
        return Err(BadInput(format!("--payment: `{}` is not CHANNEL:REF (e.g. wechat:WX2024…)", args.payment)).into());
    };
    // Canonical before the lookups of the operation, as the fact will be (`WeChat:WX1 ` is `wechat:WX1`).
    let flag = |e: ledger::event::FieldError| BadInput(format!("--payment: {}", e.reason));
    let channel = ledger::text::channel("payment.channel", channel).map_err(flag)?;
    let channel_ref = ledger::text::identifier("payment.channel_ref", reference).map_err(flag)?;
    let refunded_at = match &args.at {
        Some(text) => flag_value(REFUND_FLAGS, "refunded_at", text)?,
        None => BeijingTime::now(),
    };
    let request = RefundRequest {
        person,
        coverage_year: args.year,
        payment: PaymentRef { channel, channel_ref },
        amount: flag_value(REFUND_FLAGS, "amount", &args.amount)?,
        reason: args.reason,
        refund_ref: args.refund_ref,
        refunded_at,
    };
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(classified)?;
    let _alone = location.decide_alone().map_err(|e| classified(StorageError::from(e)))?;
    let refunded = operations::refund::refund(&ledger, request.clone(), "cli:refund").map_err(|error| match error {
        RefundError::Field(error) => field_error(REFUND_FLAGS, error.field, error.reason),
        other => classified(other),
    })?;
    crate::family::print_recorded(&refunded.recorded);
    if let Some(after) = &refunded.after {
        let split: Vec<String> =
            after.to_funders_by_funder.iter().map(|(funder, amount)| format!("{funder} {amount}")).collect();
        outln!("refund {} to {}", refunded.refund_ref, destination_text(&refunded.destination));
        if !split.is_empty() {
            outln!("  back to the funders in the grants' split: {}", split.join(", "));
        }
        outln!(
            "{} {}: now {}; net received {}, refunded {}",
            request.person.masked(),
            request.coverage_year,
            after.state.words(),
            after.net_received,
            after.refunded
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
