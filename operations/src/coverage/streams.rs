//! A person's facts read through the ledger's stream index instead of a
//! scan (invariant 12): the person streams of every identity they had,
//! the family streams they are bound on, their proxy applications'
//! streams, and (for coverage) the policy streams.

use ledger::{Envelope, Event, Identity, LogReader, UtcTime};
use projections::coverage::Coverage;
use projections::family::Family;
use projections::Projection;
use std::collections::HashSet;

/// The facts about one of `identities` up to `upto`, in log order, read
/// through the ledger's stream index instead of a scan: the person streams
/// of every identity, the binding streams of every holder they are bound
/// to or are, and the streams of the proxy applications they are part of
/// (from `family`, which reflects the log at `upto`).
pub fn history_by_streams(
    log: &dyn LogReader,
    family: &Family,
    identities: &HashSet<Identity>,
    upto: u64,
) -> Result<Vec<Envelope>, ledger::LedgerError> {
    let mut streams: Vec<String> = Vec::new();
    for identity in identities {
        streams.push(ledger::event::person_stream(identity));
        streams.push(ledger::event::family_stream(identity));
        streams.extend(family.bindings_as_member(identity).map(|b| ledger::event::family_stream(&b.holder)));
        streams.extend(family.applications_of(identity).map(|a| ledger::event::proxy_stream(&a.application_id)));
    }
    let mut applications = HashSet::new();
    let mut facts = read_streams(log, streams, |e| e.head.position <= upto)?;
    // The same filter as the scan: a holder's stream also holds other members' bindings.
    facts.retain(|envelope| concerns(envelope, identities, &mut applications));
    Ok(facts)
}

/// The records of `streams` that `keep` accepts, in log order, each once.
fn read_streams(
    log: &dyn LogReader,
    mut streams: Vec<String>,
    keep: impl Fn(&Envelope) -> bool,
) -> Result<Vec<Envelope>, ledger::LedgerError> {
    streams.sort();
    streams.dedup();
    let mut facts: Vec<Envelope> = Vec::new();
    for stream in &streams {
        facts.extend(log.read_stream_blocking(stream)?.into_iter().filter(|e| keep(e)));
    }
    facts.sort_by_key(|e| e.head.position);
    facts.dedup_by_key(|e| e.head.position);
    Ok(facts)
}

/// What the coverage projection knew of one person at `moment`
/// (transaction time), folded from the facts recorded by then on the
/// person's streams (every identity `live` knows them by, their proxy
/// applications) and on every policy stream; the same answers for this
/// person as a rebuild of the whole log as of `moment`
/// (`replay::audit::rebuild_as_of`), at the cost of the person's facts.
/// Its position is the last of those facts, not the log's head then.
pub fn person_as_of(
    log: &dyn LogReader,
    live: &Coverage,
    family: &Family,
    person: &Identity,
    moment: UtcTime,
) -> Result<Coverage, ledger::LedgerError> {
    let identities: Vec<Identity> = match live.person(person) {
        Some(summary) => std::iter::once(summary.current).chain(summary.former).collect(),
        None => vec![person.clone()],
    };
    let mut streams: Vec<String> = Vec::new();
    for identity in &identities {
        streams.push(ledger::event::person_stream(identity));
        streams.extend(family.applications_of(identity).map(|a| ledger::event::proxy_stream(&a.application_id)));
    }
    streams.extend(live.policy_years().into_iter().map(|(region, year)| ledger::event::policy_stream(region, year)));
    let mut coverage = Coverage::new();
    for envelope in read_streams(log, streams, |e| e.head.recorded_at <= moment && e.head.position <= live.position())?
    {
        coverage.apply(&envelope);
    }
    Ok(coverage)
}

/// Whether a fact is about one of `identities`; proxy applications for them
/// are remembered so that their later steps are shown too.
pub fn concerns(envelope: &Envelope, identities: &HashSet<Identity>, applications: &mut HashSet<String>) -> bool {
    let is = |identity: &Identity| identities.contains(identity);
    match &envelope.event {
        Event::PersonRegisteredV1(e) => is(&e.person),
        Event::IdentityConvertedV1(e) => is(&e.from) || is(&e.to),
        Event::PreRegistrationVoidedV1(e) => is(&e.person),
        Event::HardshipCertifiedV1(e) => is(&e.person),
        Event::HardshipAssessedV1(e) => is(&e.person),
        Event::PaymentReceivedV1(e) => is(&e.person),
        Event::SubsidyGrantedV1(e) => is(&e.person),
        Event::RefundIssuedV1(e) => is(&e.person),
        Event::FamilyBindingCreatedV1(e) => is(&e.holder) || is(&e.member),
        Event::FamilyBindingRevokedV1(e) => is(&e.holder) || is(&e.member),
        Event::ProxySubmittedV1(e) => {
            let mine = is(&e.holder) || is(&e.member);
            if mine {
                applications.insert(e.application_id.clone());
            }
            mine
        }
        Event::ProxyProcessingV1(e) => applications.contains(&e.application_id),
        Event::ProxyCreditedV1(e) => applications.contains(&e.application_id),
        Event::ProxyFailedV1(e) => applications.contains(&e.application_id),
        Event::ProxyReturnedV1(e) => applications.contains(&e.application_id),
        Event::PolicyPublishedV1(_) | Event::PolicyAmendedV1(_) | Event::ReconciliationRecordedV1(_) => false,
    }
}
