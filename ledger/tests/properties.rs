//! Laws of the ledger, over arbitrary events of all 18 kinds:
//! * encoding then decoding an event (alone, in a record, or as JSON) gives
//!   it back;
//! * after any sequence of appends (random batches, random repeats) the
//!   chain verifies and holds exactly the model's records;
//! * re-appending any already-appended events, in any order and batching, is
//!   a no-op, before and after a reopen.

mod common;

use ledger::envelope::{self, codec, EnvelopeHead};
use ledger::event::*;
use ledger::{BeijingTime, Date, Event, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog, UtcTime};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::HashMap;

// ---- strategies -----------------------------------------------------------

fn region() -> impl Strategy<Value = RegionCode> {
    (100_000u32..=999_999).prop_map(|code| RegionCode::new(code).expect("6 digits"))
}

fn date() -> impl Strategy<Value = Date> {
    (1930i32..=2100, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| Date::ymd(y, m, d).expect("a calendar day"))
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        3 => (region(), 1930i32..=2025, 1u32..=12, 1u32..=28, 0u16..1000)
            .prop_map(|(r, y, m, d, seq)| Identity::resident(r, Date::ymd(y, m, d).expect("day").0, seq)),
        1 => "[A-Za-z0-9-]{1,40}".prop_map(|n| format!("other:{n}").parse().expect("other certificate")),
    ]
}

fn money() -> impl Strategy<Value = Money> {
    prop_oneof![0i64..1_000_000, 0..=Money::MAX_FEN].prop_map(|fen| Money::from_fen(fen).expect("in range"))
}

/// Business instants from 2000 to 2100, whole seconds (as channels give them).
fn instant() -> impl Strategy<Value = BeijingTime> {
    (946_684_800i64..4_102_444_800).prop_map(|s| BeijingTime(s * 1_000_000))
}

fn year() -> impl Strategy<Value = u16> {
    2000u16..=2100
}

/// Free text: any characters but control characters, possibly empty.
fn text() -> BoxedStrategy<String> {
    "\\PC{0,24}".boxed()
}

/// Text that must not be blank.
fn required() -> BoxedStrategy<String> {
    "[A-Za-z0-9\\x{4e00}-\\x{9fa5}]\\PC{0,20}".boxed()
}

/// A reference or code in canonical form (`ledger::text::identifier`).
fn identifier() -> BoxedStrategy<String> {
    "[A-Za-z0-9\\x{4e00}-\\x{9fa5}][A-Za-z0-9\\x{4e00}-\\x{9fa5}_./:-]{0,20}".boxed()
}

/// A channel name in canonical form (`ledger::text::channel`).
fn channel() -> BoxedStrategy<String> {
    "[a-z0-9_]{1,20}".boxed()
}

/// A name, not blank, in canonical form (`ledger::text::name`).
fn name() -> BoxedStrategy<String> {
    required()
        .prop_filter_map("a name without invisible characters", |text| ledger::text::name("name", &text).ok())
        .boxed()
}

fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(\\PC|\n){0,200}",
        // Large enough that a few fill a block.
        1 => (100usize..4_800).prop_map(|n| "[policy]\n政策 = 1\n".repeat(n / 4)),
    ]
}

fn basis() -> impl Strategy<Value = EnrolmentBasis> {
    prop_oneof![
        Just(EnrolmentBasis::Standard),
        Just(EnrolmentBasis::NewbornPreRegistration),
        Just(EnrolmentBasis::Newborn),
        date().prop_map(|left_on| EnrolmentBasis::FromEmployeeInsurance { left_on }),
        any::<u16>().prop_map(|last_paid_year| EnrolmentBasis::Interrupted { last_paid_year }),
    ]
}

fn payer() -> impl Strategy<Value = Payer> {
    prop_oneof![Just(Payer::Myself), identity().prop_map(Payer::Other), name().prop_map(Payer::Collector)]
}

fn funder() -> impl Strategy<Value = Funder> {
    prop_oneof![
        Just(Funder::Province),
        Just(Funder::City),
        Just(Funder::County),
        Just(Funder::MedicalAssistanceFund),
        name().prop_map(Funder::Other),
    ]
}

fn relation() -> impl Strategy<Value = Relation> {
    prop::sample::select(vec![
        Relation::Spouse,
        Relation::Parent,
        Relation::Child,
        Relation::Sibling,
        Relation::PaternalGrandparent,
        Relation::MaternalGrandparent,
        Relation::PaternalGrandchild,
        Relation::MaternalGrandchild,
    ])
}

fn destination() -> impl Strategy<Value = RefundDestination> {
    prop_oneof![
        Just(RefundDestination::OriginalChannel),
        identity().prop_map(RefundDestination::PersonalAccount),
        Just(RefundDestination::Funders),
    ]
}

/// Valid events of every kind (they pass `Event::validate`).
fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (region(), year(), text(), document()).prop_map(|(region, coverage_year, source, document)| {
            Event::PolicyPublishedV1(PolicyPublished { region, coverage_year, source, document })
        }),
        (region(), year(), text(), document(), text()).prop_map(|(region, coverage_year, source, document, reason)| {
            Event::PolicyAmendedV1(PolicyAmended { region, coverage_year, source, document, reason })
        }),
        (identity(), name(), region(), date(), date(), basis()).prop_map(
            |(person, name, region, other_birth, registered_on, basis)| {
                let birth_date = person.birth_date().map(Date).unwrap_or(other_birth);
                Event::PersonRegisteredV1(PersonRegistered { person, name, region, birth_date, registered_on, basis })
            }
        ),
        (identity(), identity(), date()).prop_map(|(from, to, converted_on)| Event::IdentityConvertedV1(
            IdentityConverted { from, to, converted_on }
        )),
        (identity(), date(), text()).prop_map(|(person, voided_on, reason)| Event::PreRegistrationVoidedV1(
            PreRegistrationVoided { person, voided_on, reason }
        )),
        (identity(), year(), identifier(), name(), date()).prop_map(
            |(person, coverage_year, group, certified_by, certified_on)| {
                Event::HardshipCertifiedV1(HardshipCertified {
                    person,
                    coverage_year,
                    group,
                    certified_by,
                    certified_on,
                })
            }
        ),
        (identity(), year(), identifier(), money(), money(), date()).prop_map(
            |(person, coverage_year, group, subsidy, amount_due, assessed_on)| {
                Event::HardshipAssessedV1(HardshipAssessed {
                    person,
                    coverage_year,
                    group,
                    subsidy,
                    amount_due,
                    assessed_on,
                })
            }
        ),
        (identity(), year(), money(), channel(), identifier(), payer(), instant()).prop_map(
            |(person, coverage_year, amount, channel, channel_ref, payer, paid_at)| {
                Event::PaymentReceivedV1(PaymentReceived {
                    person,
                    coverage_year,
                    amount,
                    channel,
                    channel_ref,
                    payer,
                    paid_at,
                })
            }
        ),
        (identity(), year(), identifier(), prop::collection::vec((funder(), money()), 1..=8), date()).prop_map(
            |(person, coverage_year, group, parts, granted_on)| {
                let parts = parts.into_iter().map(|(funder, amount)| SubsidyPart { funder, amount }).collect();
                Event::SubsidyGrantedV1(SubsidyGranted { person, coverage_year, group, parts, granted_on })
            }
        ),
        (identity(), year(), identifier(), (channel(), identifier()), money(), destination(), instant(), text())
            .prop_map(
                |(
                    person,
                    coverage_year,
                    refund_ref,
                    (channel, channel_ref),
                    amount,
                    destination,
                    refunded_at,
                    reason,
                )| {
                    let payment = PaymentRef { channel, channel_ref };
                    Event::RefundIssuedV1(RefundIssued {
                        person,
                        coverage_year,
                        refund_ref,
                        payment,
                        amount,
                        destination,
                        refunded_at,
                        reason,
                    })
                }
            ),
        (identity(), region(), identity(), relation(), date()).prop_map(
            |(holder, account_province, member, relation, bound_on)| {
                Event::FamilyBindingCreatedV1(FamilyBindingCreated {
                    holder,
                    account_province,
                    member,
                    relation,
                    bound_on,
                })
            }
        ),
        (identity(), identity(), date()).prop_map(|(holder, member, revoked_on)| Event::FamilyBindingRevokedV1(
            FamilyBindingRevoked { holder, member, revoked_on }
        )),
        (identifier(), identity(), identity(), year(), money(), instant()).prop_map(
            |(application_id, holder, member, coverage_year, amount, at)| {
                Event::ProxySubmittedV1(ProxySubmitted { application_id, holder, member, coverage_year, amount, at })
            }
        ),
        (identifier(), instant())
            .prop_map(|(application_id, at)| Event::ProxyProcessingV1(ProxyProcessing { application_id, at })),
        (identifier(), instant())
            .prop_map(|(application_id, at)| Event::ProxyCreditedV1(ProxyCredited { application_id, at })),
        (identifier(), text(), instant()).prop_map(|(application_id, reason, at)| Event::ProxyFailedV1(ProxyFailed {
            application_id,
            reason,
            at
        })),
        (identifier(), money(), instant()).prop_map(|(application_id, amount, at)| Event::ProxyReturnedV1(
            ProxyReturned { application_id, amount, at }
        )),
        (
            identifier(),
            prop::collection::vec((text(), text(), "[0-9a-f]{64}"), 0..4),
            date(),
            date(),
            any::<u64>(),
            "[0-9a-f]{64}",
            prop::collection::vec((required(), any::<u64>(), money()), 0..4),
        )
            .prop_map(
                |(run_id, files, period_from, period_to, ledger_head_position, ledger_head_hash, results)| {
                    Event::ReconciliationRecordedV1(ReconciliationRecorded {
                        run_id,
                        files: files.into_iter().map(|(name, format, sm3)| ReceiptFile { name, format, sm3 }).collect(),
                        period_from,
                        period_to,
                        ledger_head_position,
                        ledger_head_hash,
                        results: results
                            .into_iter()
                            .map(|(kind, count, total)| ResultCount { kind, count, total })
                            .collect(),
                    })
                }
            ),
    ]
}

fn envelope_head() -> impl Strategy<Value = EnvelopeHead> {
    (any::<u64>(), any::<u128>(), any::<i64>(), "\\PC{0,40}", any::<u64>(), "\\PC{0,20}", "\\PC{0,60}").prop_map(
        |(position, id, recorded_at, stream, stream_version, actor, idempotency_key)| EnvelopeHead {
            position,
            event_id: uuid::Uuid::from_u128(id),
            recorded_at: UtcTime(recorded_at),
            stream,
            stream_version,
            actor,
            idempotency_key,
        },
    )
}

/// Distinct facts (no two share an idempotency key) to append.
fn facts(max: usize) -> impl Strategy<Value = Vec<NewEvent>> {
    prop::collection::vec(event(), 1..max).prop_map(|events| {
        let mut seen = std::collections::HashSet::new();
        events
            .into_iter()
            .map(|e| NewEvent::fact(e, "proptest"))
            .filter(|f| seen.insert(f.idempotency_key.clone()))
            .collect()
    })
}

/// Batches of picks (with repeats) from a pool of facts.
fn batches() -> impl Strategy<Value = Vec<Vec<Index>>> {
    prop::collection::vec(prop::collection::vec(any::<Index>(), 1..25), 1..8)
}

// ---- laws -----------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_encoded_event_decodes_to_itself(event in event(), head in envelope_head()) {
        prop_assert_eq!(event.validate(), Ok(()));
        let bytes = envelope::encode_event(&event);
        let decoded: Event = bincode::Options::deserialize(codec(), &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &event);
        // In a record: the head, then the event's own bytes.
        let mut record = Vec::new();
        envelope::encode_record(&head, &bytes, &mut record);
        let (decoded_head, event_bytes) = envelope::decode_head(&record).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded_head, &head);
        prop_assert_eq!(event_bytes, bytes.as_slice());
        let (decoded_head, decoded) = envelope::decode_record(&record).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded_head, head);
        prop_assert_eq!(decoded, event.clone());
        // As JSON, the form of files and exports.
        let json = serde_json::to_string(&event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_json: Event = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(from_json, event);
    }
}

/// What the log should hold: the model of positions, keys and versions.
#[derive(Default)]
struct Model {
    /// Idempotency key → position.
    positions: HashMap<String, u64>,
    /// By position - 1: the fact and its stream version.
    records: Vec<(NewEvent, u64)>,
    versions: HashMap<String, u64>,
}

impl Model {
    /// The positions an append of `batch` must return, and how many are new.
    fn append(&mut self, batch: &[NewEvent]) -> (Vec<u64>, usize) {
        let mut n_new = 0;
        let positions = batch
            .iter()
            .map(|fact| {
                if let Some(&position) = self.positions.get(&fact.idempotency_key) {
                    return position;
                }
                let version = self.versions.entry(fact.stream.clone()).or_default();
                *version += 1;
                self.records.push((fact.clone(), *version));
                let position = self.records.len() as u64;
                self.positions.insert(fact.idempotency_key.clone(), position);
                n_new += 1;
                position
            })
            .collect();
        (positions, n_new)
    }
}

/// Appends the picked batches, checking every outcome against the model.
fn append_all(
    log: &SledLog,
    pool: &[NewEvent],
    batches: &[Vec<Index>],
    model: &mut Model,
) -> Result<(), TestCaseError> {
    for picks in batches {
        let batch: Vec<NewEvent> = picks.iter().map(|i| pool[i.index(pool.len())].clone()).collect();
        let (positions, n_new) = model.append(&batch);
        let outcome = log.append_blocking(batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(outcome.positions, positions);
        prop_assert_eq!(outcome.n_appended, n_new);
        prop_assert_eq!(outcome.head.position, model.records.len() as u64);
    }
    Ok(())
}

proptest! {
    // Each case opens a sled database: few cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_chain_verifies_after_any_appends(pool in facts(40), batches in batches()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SledLog::open(dir.path(), OpenMode::Create).expect("open");
        let mut model = Model::default();
        append_all(&log, &pool, &batches, &mut model)?;
        let head = log.durable_head();
        let report = log.verify(0, 0, &mut |_| {}).expect("verify");
        prop_assert_eq!(report.problem, None);
        prop_assert_eq!(report.n_records, head.position);
        prop_assert_eq!(report.last_good, head);
        let mut prev = log.genesis_hash();
        let mut position = 0;
        log.scan(1, head.position, |envelope| {
            let (fact, version) = &model.records[position as usize];
            position += 1;
            assert_eq!(envelope.head.position, position);
            assert_eq!(&envelope.event, &fact.event);
            assert_eq!(&envelope.head.idempotency_key, &fact.idempotency_key);
            assert_eq!(&envelope.head.stream, &fact.stream);
            assert_eq!(envelope.head.stream_version, *version);
            assert_eq!(envelope.prev_hash, prev);
            assert_eq!(envelope::chain_hash(&prev, &stored_bytes(&envelope)), envelope.hash);
            prev = envelope.hash;
            Ok(())
        }).expect("scan");
        prop_assert_eq!(position, head.position);
        prop_assert_eq!(prev, head.hash);
    }

    #[test]
    fn re_appending_appended_events_is_a_no_op(pool in facts(30), batches in batches(), again in batches()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SledLog::open(dir.path(), OpenMode::Create).expect("open");
        let mut model = Model::default();
        append_all(&log, &pool, &batches, &mut model)?;
        let head = log.durable_head();
        // Any picks of what was appended, in any order and batching.
        let appended: Vec<NewEvent> = model.records.iter().map(|(fact, _)| fact.clone()).collect();
        let check = |log: &SledLog| -> Result<(), TestCaseError> {
            for picks in &again {
                let batch: Vec<NewEvent> = picks.iter().map(|i| appended[i.index(appended.len())].clone()).collect();
                let expected: Vec<u64> = batch.iter().map(|fact| model.positions[&fact.idempotency_key]).collect();
                let outcome = log.append_blocking(batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(outcome.positions, expected);
                prop_assert_eq!(outcome.n_appended, 0);
                prop_assert_eq!(outcome.head, head);
            }
            prop_assert_eq!(log.durable_head(), head);
            Ok(())
        };
        check(&log)?;
        drop(log);
        let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
        check(&log)?;
        prop_assert_eq!(log.verify(0, 0, &mut |_| {}).expect("verify").n_records, head.position);
    }
}

/// A recorded envelope's stored bytes, re-encoded (the codec is canonical).
fn stored_bytes(envelope: &ledger::Envelope) -> Vec<u8> {
    let mut out = Vec::new();
    envelope::encode_record(&envelope.head, &envelope::encode_event(&envelope.event), &mut out);
    out
}
