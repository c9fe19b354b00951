//! Matching receipts with the ledger: pure, deterministic and independent of
//! the order of either side.
//!
//! Rules, in order:
//! 1. **reference**: same side, channel (where the receipt names one) and
//!    reference, exactly. Debits (refunds, reversals of payments) are looked
//!    up by refund reference, then by the reference of the payment refunded.
//!    The same reference with another amount is an *amount mismatch*; a
//!    reference seen before in the receipts is a *duplicate receipt*.
//! 2. **amount + payer + date**: for receipts left over, the same side and
//!    amount, the payer's identity (the insured person or the one who paid for
//!    them), business dates at most `tolerance_days` apart; the nearest
//!    date wins, then the lowest position.
//! 3. **batch** (N:1): a receipt settling several payments matches as a
//!    whole when every part names an unmatched payment of exactly its amount
//!    and the parts sum to the receipt; otherwise its parts go through rules
//!    1 and 2 one by one.
//!
//! 4. **masked ID + name + amount + date**: a receipt whose payer's ID is
//!    printed masked (`520521********2756`, tax and bank exports) and that
//!    names the payer matches the one unmatched ledger item of its side and
//!    amount, within the tolerance, whose person (or payer) fits the mask
//!    and is registered under that name ([`reconcile_with_names`]); two or
//!    more such items, and it is receipt-only. A masked ID alone is never a
//!    key.
//!
//! Receipts are visited in canonical order (file name, order in the file)
//! and ledger items by position, so shuffling the inputs changes nothing.
//! Every receipt unit and every ledger item ends in exactly one finding.

use crate::checks::{check_statement, CheckFailure};
use crate::index::{hash_of, receipt_key, Chains, FirstReceipts};
use crate::ledger_side::LedgerPayment;
use crate::model::{Direction, NotReceived, Period, Receipt, Side, Statement};
use ledger::Date;
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Deref;

/// How to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchOptions {
    /// Largest difference in days between a receipt's booking date and a
    /// payment's business date for rule 2 (amount + payer + date).
    pub tolerance_days: u32,
    /// Only receipts booked and ledger items dated in this period take part.
    pub period: Option<Period>,
}

impl Default for MatchOptions {
    fn default() -> MatchOptions {
        MatchOptions { tolerance_days: 3, period: None }
    }
}

impl MatchOptions {
    fn includes(&self, date: Date) -> bool {
        self.period.is_none_or(|period| period.contains(date))
    }
}

/// The rule a match was made by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    Reference,
    AmountPayerDate,
    Batch,
    /// Rule 4: weak evidence, reported apart.
    MaskedIdNameDate,
}

/// What a finding says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind<'a> {
    Matched(Rule),
    /// Same reference, different amount.
    AmountMismatch,
    /// A reference already given by `first`; `ledger_position` is the
    /// ledger item of that reference, if there is one.
    DuplicateReceipt {
        first: &'a Receipt,
        ledger_position: Option<u64>,
    },
    ReceiptOnly,
    LedgerOnly,
    /// The statement failed its self-checks: its receipts are not matched.
    StatementCheckFailed {
        statement: &'a Statement,
        failures: Vec<CheckFailure>,
    },
    /// The file says the money did not arrive (a status column, a batch
    /// return's result code): listed, never matched, not a break.
    NotReceived(&'a NotReceived),
}

/// The result kinds, in report order, as named in summaries and events.
pub const KIND_NAMES: [&str; 10] = [
    "matched_by_reference",
    "matched_by_amount_payer_date",
    "matched_as_batch",
    "amount_mismatch",
    "duplicate_receipt",
    "receipt_only",
    "ledger_only",
    "statement_check_failed",
    "not_received",
    "matched_by_masked_id_name_date",
];

impl FindingKind<'_> {
    pub fn name(&self) -> &'static str {
        KIND_NAMES[self.order()]
    }

    pub(crate) fn order(&self) -> usize {
        match self {
            FindingKind::Matched(Rule::Reference) => 0,
            FindingKind::Matched(Rule::AmountPayerDate) => 1,
            FindingKind::Matched(Rule::Batch) => 2,
            FindingKind::AmountMismatch => 3,
            FindingKind::DuplicateReceipt { .. } => 4,
            FindingKind::ReceiptOnly => 5,
            FindingKind::LedgerOnly => 6,
            FindingKind::StatementCheckFailed { .. } => 7,
            FindingKind::NotReceived(_) => 8,
            FindingKind::Matched(Rule::MaskedIdNameDate) => 9,
        }
    }

    pub fn is_match(&self) -> bool {
        matches!(self, FindingKind::Matched(_))
    }

    /// Whether a clerk has to look at it: neither a match nor a row the
    /// file itself says was not received.
    pub fn is_break(&self) -> bool {
        !matches!(self, FindingKind::Matched(_) | FindingKind::NotReceived(_))
    }
}

/// References to receipts or ledger items; one is held without allocating.
/// Dereferences to a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refs<'a, T> {
    None,
    One(&'a T),
    Many(Vec<&'a T>),
}

impl<'a, T> Deref for Refs<'a, T> {
    type Target = [&'a T];

    fn deref(&self) -> &[&'a T] {
        match self {
            Refs::None => &[],
            Refs::One(one) => std::slice::from_ref(one),
            Refs::Many(many) => many,
        }
    }
}

impl<'r, 'a, T> IntoIterator for &'r Refs<'a, T> {
    type Item = &'r &'a T;
    type IntoIter = std::slice::Iter<'r, &'a T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> From<Vec<&'a T>> for Refs<'a, T> {
    fn from(many: Vec<&'a T>) -> Refs<'a, T> {
        Refs::Many(many)
    }
}

/// One result: what was found, with the receipts and ledger items it
/// accounts for (each receipt unit and each ledger item in exactly one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding<'a> {
    pub kind: FindingKind<'a>,
    pub side: Side,
    pub receipts: Refs<'a, Receipt>,
    pub ledger: Refs<'a, LedgerPayment>,
}

/// The self-check failures of one statement (fatal or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementChecks<'a> {
    pub statement: &'a Statement,
    pub failures: Vec<CheckFailure>,
}

/// What a reconciliation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<'a> {
    pub findings: Vec<Finding<'a>>,
    /// Statements with at least one failed self-check.
    pub checks: Vec<StatementChecks<'a>>,
    /// The period compared: the one asked for, else the span of the dates of
    /// the receipts and ledger items compared (`None` when there were none).
    pub period: Option<Period>,
}

/// Reconciles statements with ledger payments and refunds. The statements'
/// self-checks run on one thread while the ledger side is indexed on another.
pub fn reconcile<'a>(
    statements: impl IntoIterator<Item = &'a Statement>,
    ledger: &'a [LedgerPayment],
    options: &MatchOptions,
) -> Report<'a> {
    reconcile_with_names(statements, ledger, options, &Names::new())
}

/// Registered names by identity (as the ledger writes identities): what
/// rule 4 needs of the persons a masked ID could be. Callers fill it with
/// the persons registered under the names the receipts give, no others.
pub type Names = HashMap<String, String>;

/// [`reconcile`], with the registered names rule 4 (masked ID + name +
/// amount + date) checks receipts against.
pub fn reconcile_with_names<'a>(
    statements: impl IntoIterator<Item = &'a Statement>,
    ledger: &'a [LedgerPayment],
    options: &MatchOptions,
    names: &Names,
) -> Report<'a> {
    let mut statements: Vec<&'a Statement> = statements.into_iter().collect();
    statements.sort_by(|a, b| (&*a.file, &a.at).cmp(&(&*b.file, &b.at)));
    let n_receipts: usize = statements.iter().map(|s| s.receipts.len()).sum();
    let (checked, mut matcher) = std::thread::scope(|scope| {
        let indexing = scope.spawn(|| {
            let mut items: Vec<&'a LedgerPayment> =
                ledger.iter().filter(|p| options.includes(p.business_date)).collect();
            items.sort_by(|a, b| ledger_order(a, b));
            Matcher::new(items, n_receipts)
        });
        let checked = check_all(&statements, options);
        let matcher = indexing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, matcher)
    });
    let Checked { mut findings, checks, units } = checked;
    let period = options.period.or_else(|| span(&units, &matcher.items, &findings));

    findings.reserve(units.len() + matcher.items.len());
    let mut rest = Vec::new();
    for group in units.chunks(PREFETCH_RECEIPTS) {
        matcher.prefetch(group);
        for &unit in group {
            matcher.by_reference(unit, &mut findings, &mut rest);
        }
    }
    matcher.index_identities();
    let mut masked = Vec::new();
    for unit in rest {
        let finding = matcher.by_amount_payer_date(unit, options.tolerance_days);
        match finding.kind {
            // Full IDs go first: a masked one only takes what they leave.
            FindingKind::ReceiptOnly if !names.is_empty() && is_masked_and_named(unit) => masked.push(unit),
            _ => findings.push(finding),
        }
    }
    if !masked.is_empty() {
        matcher.index_masks();
        findings.extend(masked.into_iter().map(|unit| matcher.by_masked_id_name_date(unit, options, names)));
    }
    findings.extend(matcher.ledger_only());
    Report { findings, checks, period }
}

/// Statements after their self-checks: findings for those that failed, the
/// receipts of the others in canonical order.
struct Checked<'a> {
    findings: Vec<Finding<'a>>,
    checks: Vec<StatementChecks<'a>>,
    units: Vec<&'a Receipt>,
}

fn check_all<'a>(statements: &[&'a Statement], options: &MatchOptions) -> Checked<'a> {
    let mut checked = Checked { findings: Vec::new(), checks: Vec::new(), units: Vec::new() };
    for &statement in statements {
        let failures = check_statement(statement);
        let in_period = statement.receipts.iter().filter(|r| options.includes(r.booked_on));
        if failures.iter().any(CheckFailure::is_fatal) {
            checked.findings.extend(rejected(statement, in_period, &failures));
        } else {
            checked.units.extend(in_period);
        }
        if !failures.is_empty() {
            checked.checks.push(StatementChecks { statement, failures });
        }
        let not_received = statement.not_received.iter().filter(|n| options.includes(n.receipt.booked_on));
        checked.findings.extend(not_received.map(|not_received| Finding {
            kind: FindingKind::NotReceived(not_received),
            side: not_received.receipt.side(),
            receipts: Refs::One(&not_received.receipt),
            ledger: Refs::None,
        }));
    }
    checked.units.sort_by(|a, b| receipt_order(a, b));
    checked
}

/// One finding per side for a statement that failed its checks.
fn rejected<'a>(
    statement: &'a Statement,
    receipts: impl Iterator<Item = &'a Receipt>,
    failures: &[CheckFailure],
) -> Vec<Finding<'a>> {
    let (credits, debits): (Vec<&Receipt>, Vec<&Receipt>) = receipts.partition(|r| r.side() == Side::Payment);
    let kind = FindingKind::StatementCheckFailed { statement, failures: failures.to_vec() };
    let mut out = Vec::new();
    if !credits.is_empty() || debits.is_empty() {
        out.push(Finding { kind: kind.clone(), side: Side::Payment, receipts: credits.into(), ledger: Refs::None });
    }
    if !debits.is_empty() {
        out.push(Finding { kind, side: Side::Refund, receipts: debits.into(), ledger: Refs::None });
    }
    out
}

/// Canonical order of receipts: file, order in the file, then content (for
/// the same file given twice).
fn receipt_order(a: &Receipt, b: &Receipt) -> Ordering {
    (&*a.file, a.seq, &a.reference, a.amount, a.booked_on, a.direction).cmp(&(
        &*b.file,
        b.seq,
        &b.reference,
        b.amount,
        b.booked_on,
        b.direction,
    ))
}

fn ledger_order(a: &LedgerPayment, b: &LedgerPayment) -> Ordering {
    (a.position, a.kind, &a.channel, &a.channel_ref, a.amount).cmp(&(
        b.position,
        b.kind,
        &b.channel,
        &b.channel_ref,
        b.amount,
    ))
}

fn span(units: &[&Receipt], items: &[&LedgerPayment], findings: &[Finding<'_>]) -> Option<Period> {
    let rejected = findings.iter().flat_map(|f| f.receipts.iter().map(|r| r.booked_on));
    let dates = units.iter().map(|r| r.booked_on).chain(items.iter().map(|p| p.business_date)).chain(rejected);
    dates.fold(None, |period: Option<Period>, date| match period {
        None => Some(Period { from: date, to: date }),
        Some(p) => Some(Period { from: p.from.min(date), to: p.to.max(date) }),
    })
}

/// Receipts whose index entries are read ahead, together, before they are
/// matched one by one: their cache misses then overlap instead of queueing.
const PREFETCH_RECEIPTS: usize = 32;

/// What matching reads of a ledger item on its hot path, packed so that a
/// lookup costs few cache misses.
struct Slot<'a> {
    item: &'a LedgerPayment,
    reference: &'a str,
    fen: i64,
    /// Interned channel (`Matcher::channels`).
    channel: u32,
    kind: Side,
    matched: bool,
}

const NO_ITEM: u32 = u32::MAX;

/// A receipt's channel as matching sees it.
#[derive(Clone, Copy)]
enum ChannelId {
    /// The receipt names none: any channel fits.
    Any,
    Known(u32),
    /// A channel no ledger item has: nothing fits.
    Unknown,
}

struct Matcher<'a> {
    items: Vec<&'a LedgerPayment>,
    slots: Vec<Slot<'a>>,
    channels: FxHashMap<&'a str, u32>,
    /// Items by (side, reference).
    by_ref: Chains,
    /// Refunds by the reference of the payment they return.
    by_refund_of: Chains,
    /// Unmatched items by (side, amount in fen, identity), built after rule 1.
    by_identity: Chains,
    /// The first receipt of each (side, channel, reference).
    seen: FirstReceipts<'a>,
}

impl<'a> Matcher<'a> {
    fn new(items: Vec<&'a LedgerPayment>, n_receipts: usize) -> Matcher<'a> {
        let mut channels: FxHashMap<&'a str, u32> = FxHashMap::default();
        let mut slots = Vec::with_capacity(items.len());
        for item in &items {
            let next = u32::try_from(channels.len()).expect("fewer than 2^32 channels");
            let channel = *channels.entry(item.channel.as_str()).or_insert(next);
            let (reference, fen, kind) = (item.channel_ref.as_str(), item.amount.fen(), item.kind);
            slots.push(Slot { item, reference, fen, channel, kind, matched: false });
        }
        let mut by_ref = Chains::with_capacity(items.len());
        let mut by_refund_of = Chains::with_capacity(0);
        let hashes: Vec<u64> = items.iter().map(|item| hash_of((item.kind, item.channel_ref.as_str()))).collect();
        for (chunk, group) in hashes.chunks(PREFETCH_RECEIPTS).enumerate().rev() {
            let start = chunk * PREFETCH_RECEIPTS;
            std::hint::black_box(group.iter().fold(0u64, |sink, &hash| sink.wrapping_add(by_ref.touch(hash))));
            for (offset, &hash) in group.iter().enumerate().rev() {
                let index = u32::try_from(start + offset).expect("fewer than 2^32 ledger items");
                by_ref.push_front(hash, index);
                if let Some(original) = items[index as usize].refund_of.as_deref() {
                    by_refund_of.push_front(hash_of(original), index);
                }
            }
        }
        Matcher {
            items,
            slots,
            channels,
            by_ref,
            by_refund_of,
            by_identity: Chains::with_capacity(0),
            seen: FirstReceipts::with_capacity(n_receipts),
        }
    }

    /// Reads what rule 1 will read for these receipts, in three passes of
    /// independent loads; the values are discarded (matching reads them
    /// again, from the cache). Changes nothing, so it cannot change a result.
    fn prefetch(&self, receipts: &[&'a Receipt]) {
        let mut sink = 0u64;
        let mut firsts = [NO_ITEM; PREFETCH_RECEIPTS];
        for receipt in receipts {
            if let Some(key) = receipt_key(receipt) {
                sink = sink.wrapping_add(self.seen.touch(key));
                let hash = hash_of((key.0, key.2));
                sink = sink.wrapping_add(self.by_ref.touch(hash));
            }
        }
        for (receipt, first) in receipts.iter().zip(&mut firsts) {
            if let Some(key) = receipt_key(receipt) {
                *first = self.by_ref.first(hash_of((key.0, key.2))).unwrap_or(NO_ITEM);
            }
        }
        for &first in firsts.iter().filter(|&&first| first != NO_ITEM) {
            let slot = &self.slots[first as usize];
            let first_byte = slot.reference.as_bytes().first().copied().unwrap_or(0);
            sink = sink.wrapping_add(slot.fen as u64).wrapping_add(u64::from(first_byte));
        }
        std::hint::black_box(sink);
    }

    fn channel_of(&self, receipt: &Receipt) -> ChannelId {
        match receipt.channel.as_deref() {
            None => ChannelId::Any,
            Some(channel) => self.channels.get(channel).map_or(ChannelId::Unknown, |&id| ChannelId::Known(id)),
        }
    }

    fn is_free(&self, channel: ChannelId, item: u32) -> bool {
        let slot = &self.slots[item as usize];
        !slot.matched
            && match channel {
                ChannelId::Any => true,
                ChannelId::Known(id) => slot.channel == id,
                ChannelId::Unknown => false,
            }
    }

    /// Items of a side and reference, ascending.
    fn referenced(&self, side: Side, reference: &'a str) -> impl Iterator<Item = u32> + '_ {
        let slots = &self.slots;
        self.by_ref.iter(hash_of((side, reference))).filter(move |&item| {
            let slot = &slots[item as usize];
            slot.kind == side && slot.reference == reference
        })
    }

    /// Refunds of the payment of a reference, ascending.
    fn refunds_of(&self, reference: &'a str) -> impl Iterator<Item = u32> + '_ {
        let items = &self.items;
        self.by_refund_of
            .iter(hash_of(reference))
            .filter(move |&item| items[item as usize].refund_of.as_deref() == Some(reference))
    }

    /// The ledger item a receipt names by reference: among unmatched items
    /// of its side and channel, one of the same amount, else the first.
    fn named(&self, receipt: &'a Receipt) -> Option<u32> {
        let channel = self.channel_of(receipt);
        let fen = receipt.amount.fen();
        let best = |items: &mut dyn Iterator<Item = u32>| -> Option<u32> {
            let mut first = None;
            for item in items.filter(|&item| self.is_free(channel, item)) {
                if self.slots[item as usize].fen == fen {
                    return Some(item);
                }
                first = first.or(Some(item));
            }
            first
        };
        let side = receipt.side();
        let reference = receipt.reference.as_deref();
        let direct = reference.and_then(|r| best(&mut self.referenced(side, r)));
        if direct.is_some() || side == Side::Payment {
            return direct;
        }
        let original = receipt.original_reference.as_deref().and_then(|r| best(&mut self.refunds_of(r)));
        original.or_else(|| reference.and_then(|r| best(&mut self.refunds_of(r))))
    }

    /// The lowest position holding a receipt's reference, matched or not.
    fn any_position(&self, receipt: &'a Receipt) -> Option<u64> {
        let reference = receipt.reference.as_deref()?;
        let channel = self.channel_of(receipt);
        let fits = |item: &u32| match channel {
            ChannelId::Any => true,
            ChannelId::Known(id) => self.slots[*item as usize].channel == id,
            ChannelId::Unknown => false,
        };
        let item = self.referenced(receipt.side(), reference).find(fits)?;
        Some(self.items[item as usize].position)
    }

    fn is_credit_reversal(receipt: &Receipt) -> bool {
        receipt.reversal && receipt.direction == Direction::Credit
    }

    /// Rule 1, and rule 3 for batches. Receipts it cannot place go to `rest`.
    fn by_reference(&mut self, receipt: &'a Receipt, findings: &mut Vec<Finding<'a>>, rest: &mut Vec<&'a Receipt>) {
        // A credit reversal undoes a refund; the ledger has no event for it.
        if Self::is_credit_reversal(receipt) {
            rest.push(receipt);
            return;
        }
        if let Some(duplicate) = self.duplicate(receipt) {
            findings.push(duplicate);
            return;
        }
        if receipt.is_batch() {
            self.batch(receipt, findings, rest);
            return;
        }
        match self.named(receipt) {
            Some(item) => {
                let slot = &mut self.slots[item as usize];
                slot.matched = true;
                let ledger_item = slot.item;
                let kind = if ledger_item.amount == receipt.amount {
                    FindingKind::Matched(Rule::Reference)
                } else {
                    FindingKind::AmountMismatch
                };
                findings.push(Finding {
                    kind,
                    side: receipt.side(),
                    receipts: Refs::One(receipt),
                    ledger: Refs::One(ledger_item),
                });
            }
            None => rest.push(receipt),
        }
    }

    /// A duplicate-receipt finding if the receipt's key was seen; else
    /// remembers the key.
    fn duplicate(&mut self, receipt: &'a Receipt) -> Option<Finding<'a>> {
        let first = self.seen.first_or_insert(receipt)?;
        Some(Finding {
            kind: FindingKind::DuplicateReceipt { first, ledger_position: self.any_position(receipt) },
            side: receipt.side(),
            receipts: Refs::One(receipt),
            ledger: Refs::None,
        })
    }

    fn batch(&mut self, receipt: &'a Receipt, findings: &mut Vec<Finding<'a>>, rest: &mut Vec<&'a Receipt>) {
        let mut taken: Vec<u32> = Vec::with_capacity(receipt.parts.len());
        let mut sum_fen: i128 = 0;
        let whole = receipt.parts.iter().all(|part| {
            sum_fen += i128::from(part.amount.fen());
            let Some(key) = receipt_key(part) else { return false };
            if self.seen.contains(key) {
                return false;
            }
            let channel = self.channel_of(part);
            let found = self
                .referenced(key.0, key.2)
                .find(|&item| self.is_free(channel, item) && self.slots[item as usize].fen == part.amount.fen());
            match found {
                Some(item) => {
                    // Taken for now, so that two parts cannot claim one payment.
                    self.slots[item as usize].matched = true;
                    taken.push(item);
                    true
                }
                None => false,
            }
        }) && sum_fen == i128::from(receipt.amount.fen());
        if whole {
            for part in &receipt.parts {
                self.seen.first_or_insert(part);
            }
            let ledger: Vec<&LedgerPayment> = taken.iter().map(|&item| self.slots[item as usize].item).collect();
            findings.push(Finding {
                kind: FindingKind::Matched(Rule::Batch),
                side: receipt.side(),
                receipts: Refs::One(receipt),
                ledger: ledger.into(),
            });
            return;
        }
        for item in taken {
            self.slots[item as usize].matched = false;
        }
        for part in &receipt.parts {
            self.by_reference(part, findings, rest);
        }
    }

    /// Indexes the items rule 1 left unmatched by amount and identities.
    fn index_identities(&mut self) {
        let n_unmatched = self.slots.iter().filter(|slot| !slot.matched).count();
        let mut chains = Chains::with_capacity(n_unmatched);
        for (index, item) in self.items.iter().enumerate().rev() {
            if self.slots[index].matched {
                continue;
            }
            let index = index as u32;
            chains.push_front(hash_of((item.kind, item.amount.fen(), item.person.as_str())), index);
            if let Some(payer) = item.payer.as_deref().filter(|&payer| payer != item.person) {
                chains.push_front(hash_of((item.kind, item.amount.fen(), payer)), index);
            }
        }
        self.by_identity = chains;
    }

    /// Rule 2; a receipt it cannot place is receipt-only.
    fn by_amount_payer_date(&mut self, receipt: &'a Receipt, tolerance_days: u32) -> Finding<'a> {
        let side = receipt.side();
        let channel = self.channel_of(receipt);
        let fen = receipt.amount.fen();
        let candidate = receipt.payer_id.as_deref().filter(|_| !Self::is_credit_reversal(receipt)).and_then(|payer| {
            self.by_identity
                .iter(hash_of((side, fen, payer)))
                .filter(|&item| {
                    let item = self.items[item as usize];
                    item.kind == side
                        && item.amount.fen() == fen
                        && (item.person == payer || item.payer.as_deref() == Some(payer))
                })
                .filter(|&item| self.is_free(channel, item))
                .map(|item| {
                    let days = (self.items[item as usize].business_date.0 - receipt.booked_on.0).num_days().abs();
                    (days, item)
                })
                .filter(|&(days, _)| days <= i64::from(tolerance_days))
                .min()
        });
        self.settle(receipt, Rule::AmountPayerDate, candidate.map(|(_, item)| item))
    }

    /// A rule's finding: the receipt matched to `item` (taken now), else
    /// receipt only.
    fn settle(&mut self, receipt: &'a Receipt, rule: Rule, item: Option<u32>) -> Finding<'a> {
        let side = receipt.side();
        let Some(item) = item else {
            return Finding { kind: FindingKind::ReceiptOnly, side, receipts: Refs::One(receipt), ledger: Refs::None };
        };
        self.slots[item as usize].matched = true;
        let ledger = Refs::One(self.items[item as usize]);
        Finding { kind: FindingKind::Matched(rule), side, receipts: Refs::One(receipt), ledger }
    }

    /// Indexes the unmatched items by side, amount and the last four
    /// characters of their identities: what every masked form shows.
    fn index_masks(&mut self) {
        let mut chains = Chains::with_capacity(self.slots.iter().filter(|slot| !slot.matched).count());
        for (index, item) in self.items.iter().enumerate().rev() {
            if self.slots[index].matched {
                continue;
            }
            for identity in std::iter::once(item.person.as_str()).chain(item.payer.as_deref()) {
                chains.push_front(hash_of((item.kind, item.amount.fen(), last_four(identity))), index as u32);
            }
        }
        self.by_identity = chains;
    }

    /// Rule 4: the one unmatched item of the receipt's side, channel and
    /// amount, within the tolerance, whose person or payer fits the masked
    /// ID and is registered under the receipt's name.
    fn by_masked_id_name_date(&mut self, receipt: &'a Receipt, options: &MatchOptions, names: &Names) -> Finding<'a> {
        let (side, fen, channel) = (receipt.side(), receipt.amount.fen(), self.channel_of(receipt));
        let (Some(masked), Some(name)) = (receipt.payer_id.as_deref(), receipt.payer_name.as_deref()) else {
            return self.settle(receipt, Rule::MaskedIdNameDate, None);
        };
        let fits = |identity: &str| fits_mask(masked, identity) && names.get(identity).is_some_and(|n| n == name);
        let mut candidates: Vec<u32> = self
            .by_identity
            .iter(hash_of((side, fen, last_four(masked))))
            .filter(|&item| self.is_free(channel, item) && self.slots[item as usize].kind == side)
            .filter(|&item| {
                let item = self.items[item as usize];
                let days = (item.business_date.0 - receipt.booked_on.0).num_days().abs();
                item.amount.fen() == fen
                    && days <= i64::from(options.tolerance_days)
                    && (fits(&item.person) || item.payer.as_deref().is_some_and(fits))
            })
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let only = match candidates[..] {
            [item] => Some(item),
            _ => None,
        };
        self.settle(receipt, Rule::MaskedIdNameDate, only)
    }

    fn ledger_only(&self) -> Vec<Finding<'a>> {
        let unmatched = self.items.iter().zip(&self.slots).filter(|(_, slot)| !slot.matched);
        unmatched
            .map(|(&item, _)| Finding {
                kind: FindingKind::LedgerOnly,
                side: item.kind,
                receipts: Refs::None,
                ledger: Refs::One(item),
            })
            .collect()
    }
}

/// A receipt whose payer ID is printed masked and that names the payer.
fn is_masked_and_named(receipt: &Receipt) -> bool {
    receipt.payer_name.is_some() && receipt.payer_id.as_deref().is_some_and(|id| id.contains('*'))
}

fn last_four(identity: &str) -> &str {
    identity.get(identity.len().saturating_sub(4)..).unwrap_or(identity)
}

/// Whether an identity fits a masked one: as long, and equal wherever the
/// masked form shows a character.
pub(crate) fn fits_mask(masked: &str, identity: &str) -> bool {
    masked.len() == identity.len()
        && masked.bytes().zip(identity.bytes()).all(|(m, i)| m == b'*' || m.eq_ignore_ascii_case(&i))
}
