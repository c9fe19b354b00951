//! The ledger side of a reconciliation: recorded payments and refunds.

use crate::model::Side;
use ledger::event::{Payer, PaymentReceived, RefundIssued};
use ledger::{Date, Envelope, Event, Money};

/// A payment or refund as recorded in the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerPayment {
    /// Position of the event in the log.
    pub position: u64,
    pub kind: Side,
    /// The payment's channel; for a refund, the channel of the payment it
    /// returns (refunds go back where the money came from).
    pub channel: String,
    /// A payment's `channel_ref`; a refund's `refund_ref`.
    pub channel_ref: String,
    /// For a refund: the `channel_ref` of the payment it returns.
    pub refund_of: Option<String>,
    pub amount: Money,
    /// The insured person, as the ledger writes identities.
    pub person: String,
    /// Someone else who paid for the person (代他人缴费), if any.
    pub payer: Option<String>,
    /// `paid_at` or `refunded_at` as a business date (UTC+8).
    pub business_date: Date,
}

impl LedgerPayment {
    pub fn payment(position: u64, event: &PaymentReceived) -> LedgerPayment {
        LedgerPayment {
            position,
            kind: Side::Payment,
            channel: event.channel.clone(),
            channel_ref: event.channel_ref.clone(),
            refund_of: None,
            amount: event.amount,
            person: event.person.to_string(),
            payer: match &event.payer {
                Payer::Other(identity) => Some(identity.to_string()),
                Payer::Myself | Payer::Collector(_) => None,
            },
            business_date: event.paid_at.business_date(),
        }
    }

    pub fn refund(position: u64, event: &RefundIssued) -> LedgerPayment {
        LedgerPayment {
            position,
            kind: Side::Refund,
            channel: event.payment.channel.clone(),
            channel_ref: event.refund_ref.clone(),
            refund_of: Some(event.payment.channel_ref.clone()),
            amount: event.amount,
            person: event.person.to_string(),
            payer: None,
            business_date: event.refunded_at.business_date(),
        }
    }

    /// Whether it came (or, a refund, went back) through `channel`, as the
    /// ledger spells channels.
    pub fn is_of_channel(&self, channel: &str) -> bool {
        self.channel == channel
    }

    /// The ledger item of an event, if it is a payment or a refund.
    pub fn from_event(position: u64, event: &Event) -> Option<LedgerPayment> {
        match event {
            Event::PaymentReceivedV1(payment) => Some(LedgerPayment::payment(position, payment)),
            Event::RefundIssuedV1(refund) => Some(LedgerPayment::refund(position, refund)),
            _ => None,
        }
    }
}

/// The payments and refunds among envelopes (e.g. from `SledLog::scan`).
pub fn ledger_side<'e>(envelopes: impl IntoIterator<Item = &'e Envelope>) -> Vec<LedgerPayment> {
    envelopes.into_iter().filter_map(|e| LedgerPayment::from_event(e.head.position, &e.event)).collect()
}

/// The payments and refunds of one channel: the ledger side of a channel's
/// bill. A bill of one channel lists no other channel's payments, so they
/// would all be "ledger only" against it; the bank statement that receives
/// the channel's settlements is reconciled on its own (see the crate doc).
pub fn of_channel(items: Vec<LedgerPayment>, channel: &str) -> Vec<LedgerPayment> {
    items.into_iter().filter(|item| item.is_of_channel(channel)).collect()
}
