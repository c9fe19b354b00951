//! `Ledger`: one handle on a ledger — its log, the channels it accepts,
//! and its projections at one position, from their checkpoints caught up
//! with the log. Every operation starts here, for the CLI and the service.

use crate::channels::{Channels, ChannelsError};
use crate::checkpoints;
use crate::error::{chain, Classified, Kind, StorageError};
use crate::facts;
use crate::location::{Backend, Location};
use ledger::event::FieldError;
use ledger::Identity;
use ledger::{BeijingTime, Event, Head, LogStore, OpenMode};
use projections::coverage::{Coverage, Named, PersonStore, StoreError, DEFAULT_CHUNK_ENVELOPES};
use projections::family::{self, Family, Refusal, Verdict};
use projections::Projection;
use std::path::{Path, PathBuf};

/// The per-person coverage store, under `DIR/projections/`.
pub const PERSON_STORE: &str = "persons.sqlite";

/// Envelopes the person store folds per transaction, when set (a positive
/// number); else `DEFAULT_CHUNK_ENVELOPES`. Smaller: less memory, more
/// transactions.
pub const STORE_CHUNK_VARIABLE: &str = "YIBAO_STORE_CHUNK_ENVELOPES";

/// An open ledger.
pub struct Ledger {
    location: Location,
    log: Box<dyn LogStore>,
    /// A `channels.toml` that cannot be used refuses writes that name a
    /// channel, not lookups.
    channels: Result<Channels, ChannelsError>,
}

/// Opening a ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the ledger{}", crate::location::at_unless_named(.location, .source))]
    Storage {
        /// The data directory, or the database without its password.
        location: String,
        #[source]
        source: StorageError,
    },
}

impl Classified for OpenError {
    fn kind(&self) -> Kind {
        match self {
            OpenError::Storage { source, .. } => source.kind(),
        }
    }
}

/// Coverage and family at the same log position.
pub struct Projections {
    pub coverage: Coverage,
    pub family: Family,
}

impl Projections {
    /// The log position both reflect.
    pub fn position(&self) -> u64 {
        self.coverage.position()
    }
}

/// What recording one fact did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Appended now at `position`; the log's head after it.
    Appended { position: u64, head: Head, summary: String },
    /// Already recorded at `position` (the same key and content, or the
    /// same binding, step or refund): nothing appended.
    Repeat { position: u64, what: String },
}

impl Recorded {
    pub fn position(&self) -> u64 {
        match self {
            Recorded::Appended { position, .. } | Recorded::Repeat { position, .. } => *position,
        }
    }
}

/// Recording one fact failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A field fails the edge's checks (canonical text, known channel,
    /// limits, key).
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    /// The rules refuse the fact against the ledger's state.
    #[error("{}; nothing was appended", refusal_text(.0))]
    Refused(Refusal),
    #[error(transparent)]
    Channels(#[from] ChannelsError),
    #[error("appending the fact")]
    Storage(#[from] StorageError),
}

fn refusal_text(refusal: &Refusal) -> String {
    match refusal.field {
        Some(field) => format!("field `{field}`: {}", refusal.reason),
        None => refusal.reason.clone(),
    }
}

impl Classified for RecordError {
    fn kind(&self) -> Kind {
        match self {
            RecordError::Field(_) => Kind::BadInput,
            RecordError::Refused(_) => Kind::Refused,
            RecordError::Channels(_) => Kind::BadInput,
            RecordError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            RecordError::Field(error) => Some(error.field),
            RecordError::Refused(refusal) => refusal.field,
            RecordError::Channels(_) | RecordError::Storage(_) => None,
        }
    }
}

impl Ledger {
    /// Opens the ledger at `location` (creating it with `OpenMode::Create`).
    pub fn open(location: &Location, mode: OpenMode) -> Result<Ledger, OpenError> {
        let storage = |source| OpenError::Storage { location: location.describe(), source };
        let log = location.open_log(mode).map_err(|e| storage(StorageError::Ledger(e)))?;
        let channels = Channels::load(&location.data);
        Ok(Ledger { location: location.clone(), log, channels })
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.location.data
    }

    /// The data directory and the store.
    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn log(&self) -> &(dyn LogStore + 'static) {
        &*self.log
    }

    /// Where the person store is.
    pub fn person_store(&self) -> PersonStorePlace {
        PersonStorePlace::of(&self.location)
    }

    /// The channels facts may name: built in, plus `DIR/channels.toml`
    /// (an error when that file cannot be used: what a write answers).
    pub fn channels(&self) -> Result<&Channels, ChannelsError> {
        self.channels.as_ref().map_err(Clone::clone)
    }

    /// The coverage projection at the log's head.
    pub fn coverage(&self) -> Result<Coverage, StorageError> {
        checkpoints::caught_up(self.data(), self.log(), u64::MAX)
    }

    /// The coverage projection as far as one person's questions need it:
    /// that person alone from the per-person store, brought to the log's
    /// head first by folding the facts it lacks in chunks
    /// (`PersonStore::catch_up`: the first lookup after N new facts costs
    /// O(N), and a ledger that never had a store gets one from position 1
    /// in memory bounded by the chunk). A store that cannot be used is
    /// noted, removed and caught up again from position 1; when even that
    /// fails, the whole projection answers.
    pub fn person_coverage(&self, person: &Identity) -> Result<Coverage, StorageError> {
        let place = self.person_store();
        for _attempt in 0..2 {
            match self.caught_up_store(&place).and_then(|store| store.coverage_of(person)) {
                Ok(found) => return Ok(found),
                Err(StoreError::Log { source, .. }) => return Err(StorageError::Ledger(source)),
                Err(error) => place.forget(&error),
            }
        }
        checkpoints::caught_up(self.data(), self.log(), u64::MAX)
    }

    /// Brings the per-person store to the log's head (a progress bar while
    /// it folds), as a writer of many facts does before it returns: the
    /// next lookup or service start then reads the store as it is instead
    /// of folding what was just written. A store that cannot be used is
    /// noted, removed and caught up from position 1. Returns the records
    /// folded.
    pub fn catch_up_person_store(&self) -> Result<u64, StorageError> {
        let place = self.person_store();
        let mut n_folded = 0;
        for _attempt in 0..2 {
            match self.caught_up_store_folding(&place, &mut n_folded) {
                Ok(_) => return Ok(n_folded),
                Err(StoreError::Log { source, .. }) => return Err(StorageError::Ledger(source)),
                Err(error) => place.forget(&error),
            }
        }
        Ok(n_folded)
    }

    /// The per-person store at the log's head, with a progress bar while
    /// it is caught up.
    fn caught_up_store(&self, place: &PersonStorePlace) -> Result<PersonStore, StoreError> {
        self.caught_up_store_folding(place, &mut 0)
    }

    /// [`Ledger::caught_up_store`], adding the records folded to `n_folded`.
    fn caught_up_store_folding(&self, place: &PersonStorePlace, n_folded: &mut u64) -> Result<PersonStore, StoreError> {
        let mut store = place.open()?;
        let head = self.log.durable_head().position;
        let from = store.tip().ok().flatten().map_or(0, |tip| tip.position.min(head));
        let bar = crate::progress::bar(head - from, "catching the person store up");
        let chunk = store_chunk_envelopes();
        let mut advanced = |position: u64| bar.set_position(position.saturating_sub(from));
        *n_folded += store.catch_up_in_chunks(self.log(), head, chunk, &mut advanced)?;
        bar.finish_and_clear();
        Ok(store)
    }

    /// `read` on the person store at the log's head, in one snapshot. A
    /// store that cannot be used is noted and removed (caught up from
    /// position 1 by the next reader); then `None`.
    pub(crate) fn read_store<T>(
        &self,
        read: impl FnOnce(&PersonStore) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StorageError> {
        let place = self.person_store();
        let read = self.caught_up_store(&place).and_then(|store| store.in_snapshot(read).and_then(|read| read));
        match read {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::Log { source, .. }) => Err(StorageError::Ledger(source)),
            Err(error) => {
                place.forget(&error);
                Ok(None)
            }
        }
    }

    /// The family projection at position `upto`: read from the person
    /// store when it is there (the store is at the log's head), else
    /// folded in memory from position 1 (a past position: the auditor's).
    pub fn family_at(&self, upto: u64) -> Result<Family, StorageError> {
        let upto = upto.min(self.log.durable_head().position);
        let stored = self.read_store(|store| {
            let at_upto = store.tip()?.is_some_and(|tip| tip.position == upto);
            at_upto.then(|| store.family_all()).transpose()
        })?;
        if let Some(family) = stored.flatten() {
            return Ok(family);
        }
        let mut family = Family::new();
        family.catch_up_to(self.log(), upto).map_err(|source| StorageError::Checkpoint { name: "family", source })?;
        Ok(family)
    }

    /// Both projections at one position, the head's: coverage caught up
    /// with the log, then family to exactly coverage's position.
    pub fn projections(&self) -> Result<Projections, StorageError> {
        let coverage = self.coverage()?;
        let family = self.family_at(coverage.position())?;
        Ok(Projections { coverage, family })
    }

    /// Both projections at the head as far as a decision about a few
    /// persons and applications reads them, from the person store caught
    /// up to the head, at one tip: the family records of the identities
    /// `named` speaks of (each under every identity the person had) and of
    /// the applications it names, then the persons it names and those its
    /// applications link (`Named::linked_by`), with their applications.
    /// The cost is the persons', not the ledger's. A store that cannot be
    /// used: the whole projections.
    pub fn projections_naming(&self, named: &Named) -> Result<Projections, StorageError> {
        let read = self.read_store(|store| {
            let family = store.family_of(named)?;
            let coverage = store.coverage_named(&named.linked_by(&family))?;
            Ok(Projections { coverage, family })
        })?;
        match read {
            Some(found) => Ok(found),
            None => self.projections(),
        }
    }

    /// [`Ledger::projections_naming`] of one person (under every identity
    /// they had) and the proxy applications `applications` (ids): what a
    /// refund, an assessment or a certificate of that person reads.
    pub fn projections_of_person(&self, person: &Identity, applications: &[&str]) -> Result<Projections, StorageError> {
        let mut named = Named::default();
        named.identity(person);
        applications.iter().for_each(|application| named.application(application));
        self.projections_naming(&named)
    }

    /// The applications in flight (申请成功 / 受理中) submitted before
    /// `submitted_before` (all without it) and their members, from the
    /// person store at the head: what the stuck list reads.
    pub fn projections_in_flight(&self, submitted_before: Option<BeijingTime>) -> Result<Projections, StorageError> {
        let read = self.read_store(|store| {
            let family = store.family_in_flight(submitted_before)?;
            let mut members = Named::default();
            family.applications().for_each(|application| members.identity(&application.member));
            let coverage = store.coverage_named(&members)?;
            Ok(Projections { coverage, family })
        })?;
        match read {
            Some(found) => Ok(found),
            None => self.projections(),
        }
    }

    /// Puts `event` through the edge's checks (`facts::admit`), asks the
    /// rules (`family::decide`) against `at`, and appends it unless it is
    /// already recorded.
    pub fn record(&self, at: &Projections, event: Event, actor: &str) -> Result<Recorded, RecordError> {
        record(self.log(), self.channels()?, at, event, actor)
    }
}

/// `Ledger::record` over any log that can be appended to: the service
/// holds its own projections and log.
pub fn record(
    log: &(impl ledger::LogBackend + ?Sized),
    channels: &Channels,
    at: &Projections,
    event: Event,
    actor: &str,
) -> Result<Recorded, RecordError> {
    record_on(log, channels, &at.coverage, &at.family, event, actor)
}

/// [`record`] against projections kept apart at one position (the service
/// holds each behind a lock of its own).
pub(crate) fn record_on(
    log: &(impl ledger::LogBackend + ?Sized),
    channels: &Channels,
    coverage: &Coverage,
    family: &Family,
    event: Event,
    actor: &str,
) -> Result<Recorded, RecordError> {
    let new = facts::admit(event, None, actor, channels).map_err(RecordError::Field)?;
    match family::decide(family, coverage, &new.event).map_err(RecordError::Refused)? {
        Verdict::Repeat { position, what } => Ok(Recorded::Repeat { position, what }),
        Verdict::Append => {
            let summary = facts::summary(&new.event);
            let outcome = log.append_blocking(vec![new]).map_err(StorageError::from)?;
            let position = outcome.positions.first().copied().unwrap_or(0);
            if outcome.n_appended == 0 {
                return Ok(Recorded::Repeat { position, what: summary });
            }
            Ok(Recorded::Appended { position, head: outcome.head, summary })
        }
    }
}

/// Where the per-person store of the ledger in `data` is.
pub fn person_store_path(data: &Path) -> PathBuf {
    data.join("projections").join(PERSON_STORE)
}

/// Envelopes per catch-up transaction: `YIBAO_STORE_CHUNK_ENVELOPES` when
/// it is a positive number, else `DEFAULT_CHUNK_ENVELOPES`.
pub fn store_chunk_envelopes() -> u64 {
    std::env::var(STORE_CHUNK_VARIABLE)
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|&chunk| chunk > 0)
        .unwrap_or(DEFAULT_CHUNK_ENVELOPES)
}

/// A person store that cannot be used: noted and removed, so that it is
/// caught up from position 1.
pub fn forget_person_store(path: &Path, error: &StoreError) {
    eprintln!("note: {}; it is removed and caught up from the log", chain(error));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// Where a ledger's person store is: a SQLite file in the data directory
/// beside a sled log, or the tables of the PostgreSQL database holding the
/// log (shared by every process on it).
#[derive(Clone, Debug)]
pub enum PersonStorePlace {
    File(PathBuf),
    Database(String),
}

impl PersonStorePlace {
    /// The person store of the ledger at `location`.
    pub fn of(location: &Location) -> PersonStorePlace {
        match &location.store {
            Backend::Sled => PersonStorePlace::File(person_store_path(&location.data)),
            Backend::Postgres(url) => PersonStorePlace::Database(url.clone()),
        }
    }

    /// Opens (creating) the store.
    pub fn open(&self) -> Result<PersonStore, StoreError> {
        match self {
            PersonStorePlace::File(path) => {
                if let Some(directory) = path.parent() {
                    std::fs::create_dir_all(directory)
                        .map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
                }
                PersonStore::open(path)
            }
            PersonStorePlace::Database(url) => PersonStore::connect(url),
        }
    }

    /// A store that cannot be used: noted and emptied, so that it is
    /// caught up from position 1 (the file removed; the tables reset, as
    /// a database cannot be removed).
    pub fn forget(&self, error: &StoreError) {
        match self {
            PersonStorePlace::File(path) => forget_person_store(path, error),
            PersonStorePlace::Database(url) => {
                eprintln!("note: {}; it is emptied and caught up from the log", chain(error));
                if let Err(reset) = PersonStore::connect(url).and_then(|mut store| store.reset()) {
                    eprintln!("note: emptying the person store failed: {}", chain(&reset));
                }
            }
        }
    }
}
