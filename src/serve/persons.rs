//! The coverage projection as the service reads it: the per-person store
//! (`projections::coverage::PersonStore`), kept at the log's head by the
//! service itself (it is the only writer while it runs), and an LRU cache
//! of the persons read, bounded by an estimate of their bytes
//! (`--cache-mb`). Nothing of the whole projection is held in memory.
//!
//! One connection writes (the catch-up after each append); reads take one
//! of a few connections of their own. The store's tip and a coverage of
//! nobody at it (the policies, read again only when a policy changes) are
//! behind one lock: a catch-up holds it for writing
//! while it folds, writes, and drops from the cache every person each
//! chunk changed; a read holds it for reading while it takes a person from
//! the cache or reads and caches them. So no person read before a
//! catch-up is in the cache after it, and every answer names the position
//! its persons were read at.
//!
//! A panic mid-catch-up leaves the store as its last committed transaction
//! left it (SQLite rolls back the one cut) and poisons the lock; the next
//! access drops the whole cache and reads the tip from the store again
//! (`poison.rs`), then the catch-up folds the rest once more.

use super::poison;
use anyhow::{Context, Result};
use hashlink::LinkedHashMap;
use ledger::sync::lock_plain;
use ledger::{BeijingTime, Identity, LogReader};
use operations::PersonStorePlace;
use projections::coverage::{Changed, Coverage, Named, PersonStore, StoreError};
use projections::family::Family;
use projections::{Projection, Tip};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// Connections kept for reading (more may be open at a moment, and are
/// closed after their read): a SQLite file's are cheap to open, each with
/// a page cache of its own; a database's cost a connection and a server
/// process to open, so more are kept for the service's concurrent reads.
const MAX_FILE_READERS: usize = 4;
const MAX_DATABASE_READERS: usize = 16;
/// SQLite's page cache per reading connection. Small: SQLite walks a
/// connection's whole page cache at each commit (the writer's) and drops it
/// at the first read after another connection's commit (a reader's), which
/// the service does after every write; the operating system caches the
/// file's pages anyway.
const READER_PAGE_CACHE_KIB: u32 = 4 * 1024;
/// The writing connection's page cache once the store is at the head: the
/// 64 MiB it opens with serve the catch-up at start, which visits pages all
/// over the store; a catch-up after one write visits a few.
const WRITER_PAGE_CACHE_KIB: u32 = 4 * 1024;
/// Bytes of a cache entry beside its coverage: the key and the map's links.
const ENTRY_OVERHEAD_BYTES: usize = 128;
/// Records another process folded into a shared store past which the
/// whole cache is dropped rather than the persons they name read.
const MAX_FOREIGN_RECORDS: u64 = 10_000;
/// At most one progress line on stderr per this while the store is built.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The store, its readers, the tip and the cache.
pub struct Persons {
    place: PersonStorePlace,
    writer: Mutex<PersonStore>,
    readers: Mutex<Vec<PersonStore>>,
    /// A coverage of nobody at the store's tip, with the policies.
    at_tip: RwLock<Arc<Coverage>>,
    cache: Mutex<Cache>,
    /// Persons read from the store to answer (not those a catch-up folds).
    pub n_loaded: AtomicU64,
    /// Answers taken from the cache.
    pub n_cache_hits: AtomicU64,
}

/// Persons read, by the identity asked, least recently used first.
struct Cache {
    entries: LinkedHashMap<Identity, Entry>,
    bytes: usize,
    limit_bytes: usize,
}

struct Entry {
    coverage: Arc<Coverage>,
    bytes: usize,
}

impl Cache {
    fn get(&mut self, identity: &Identity) -> Option<Arc<Coverage>> {
        self.entries.to_back(identity).map(|entry| Arc::clone(&entry.coverage))
    }

    /// Keeps `coverage` under `identity`, dropping the least recently used
    /// entries while the bytes are above the limit.
    fn insert(&mut self, identity: Identity, coverage: Arc<Coverage>) {
        let bytes = coverage.estimated_person_bytes() + ENTRY_OVERHEAD_BYTES;
        if bytes > self.limit_bytes {
            return;
        }
        if let Some(earlier) = self.entries.insert(identity, Entry { coverage, bytes }) {
            self.bytes -= earlier.bytes;
        }
        self.bytes += bytes;
        while self.bytes > self.limit_bytes {
            let Some((_, oldest)) = self.entries.pop_front() else { break };
            self.bytes -= oldest.bytes;
        }
    }

    /// Drops what a catch-up changed.
    fn forget(&mut self, changed: &Changed) {
        if changed.everyone {
            self.clear();
            return;
        }
        for identity in &changed.identities {
            if let Some(entry) = self.entries.remove(identity) {
                self.bytes -= entry.bytes;
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// The positions a catch-up folded itself, as ranges in position order.
#[derive(Default)]
struct Folded {
    ranges: Vec<(u64, u64)>,
}

impl Folded {
    fn add(&mut self, position: u64) {
        match self.ranges.last_mut() {
            Some((_, last)) if *last + 1 == position => *last = position,
            _ => self.ranges.push((position, position)),
        }
    }

    fn n_records(&self) -> u64 {
        self.ranges.iter().map(|(first, last)| last - first + 1).sum()
    }

    /// The ranges of `(after, upto]` not folded here.
    fn gaps(&self, after: u64, upto: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut next = after + 1;
        for &(first, last) in &self.ranges {
            if first > next {
                gaps.push((next, (first - 1).min(upto)));
            }
            next = next.max(last + 1);
        }
        if next <= upto {
            gaps.push((next, upto));
        }
        gaps.retain(|(first, last)| first <= last);
        gaps
    }
}

/// What the cache holds now, for the metrics.
pub struct CacheFigures {
    pub bytes: u64,
    pub limit_bytes: u64,
    pub n_persons: u64,
}

impl Persons {
    /// Opens the person store at `place` and catches it up to the log's
    /// head: the tail since its tip, or the whole log in chunks when there
    /// is no store yet (a progress line on stderr). A store that cannot be
    /// used is noted, emptied and built again.
    pub fn open(place: &PersonStorePlace, log: &dyn LogReader, cache_limit_bytes: usize) -> Result<Persons> {
        let mut attempt = 0;
        let (writer, at_tip) = loop {
            attempt += 1;
            match caught_up_store(place, log) {
                Ok(opened) => break opened,
                Err(StoreError::Log { source, .. }) => return Err(source).context("catching the person store up"),
                Err(error) if attempt < 2 => place.forget(&error),
                Err(error) => return Err(error).context("catching the person store up"),
            }
        };
        Ok(Persons {
            place: place.clone(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            at_tip: RwLock::new(Arc::new(at_tip)),
            cache: Mutex::new(Cache { entries: LinkedHashMap::new(), bytes: 0, limit_bytes: cache_limit_bytes }),
            n_loaded: AtomicU64::new(0),
            n_cache_hits: AtomicU64::new(0),
        })
    }

    /// The store at its tip, for reading (see the module's comment).
    pub fn read(&self) -> Result<AtTip<'_>> {
        let base = poison::read(&self.at_tip, "person store", || self.reread())?;
        Ok(AtTip { persons: self, base })
    }

    /// The store's tip (a panic mid-catch-up: the tip read again).
    pub fn tip(&self) -> Result<Tip> {
        Ok(self.read()?.tip())
    }

    /// Folds the log up to `upto` into the store, dropping from the cache
    /// every person it changes. Returns the envelopes folded. On a store
    /// shared with other processes (PostgreSQL), the records they folded
    /// meanwhile are looked at too: the persons they name are dropped from
    /// the cache (everyone, past `MAX_FOREIGN_RECORDS` or on a policy).
    pub fn catch_up(&self, log: &dyn LogReader, upto: u64) -> Result<u64> {
        let mut at_tip = poison::write(&self.at_tip, "person store", || self.reread())?;
        if at_tip.position() >= upto {
            return Ok(0);
        }
        let mut writer = lock_plain(&self.writer);
        let before = at_tip.position();
        let mut policies_changed = false;
        let mut forget = |changed: Changed| {
            policies_changed |= changed.everyone;
            lock_plain(&self.cache).forget(&changed);
        };
        let mut folded_here = Folded::default();
        let chunk = operations::store_chunk_envelopes();
        let folded = writer.catch_up_observing(log, upto, chunk, &mut |_| {}, &mut forget, &mut |envelope| {
            folded_here.add(envelope.head.position)
        });
        // Also after a failure: the chunks written before it are the store's.
        let tip = writer.tip()?.ok_or_else(|| anyhow::anyhow!("the person store has no tip after a catch-up"))?;
        if tip.position < before {
            policies_changed = true;
            lock_plain(&self.cache).clear();
        } else if folded_here.n_records() < tip.position - before {
            let foreign = folded_here.gaps(before, tip.position);
            policies_changed |=
                self.forget_foreign(&writer, log, &foreign).context("reading what another process folded")?;
        }
        if tip != at_tip.tip() {
            *at_tip =
                if policies_changed { Arc::new(writer.coverage_of_many(&[])?) } else { Arc::new(at_tip.at_tip(tip)) };
        }
        folded.context("catching the person store up with the log")
    }

    /// Drops from the cache every person the records of `ranges` name
    /// (folded into the shared store by another process), under every
    /// identity they had, read from `store` at its tip. `true` when the
    /// whole cache went (a policy changed, or too many records to read).
    fn forget_foreign(&self, store: &PersonStore, log: &dyn LogReader, ranges: &[(u64, u64)]) -> Result<bool> {
        let n_records: u64 = ranges.iter().map(|(first, last)| last - first + 1).sum();
        let mut named = Named::default();
        let mut everyone = n_records > MAX_FOREIGN_RECORDS;
        for &(first, last) in ranges {
            if everyone {
                break;
            }
            log.scan(first, last, |envelope| {
                everyone |=
                    matches!(envelope.event, ledger::Event::PolicyPublishedV1(_) | ledger::Event::PolicyAmendedV1(_));
                named.add(&envelope.event);
                Ok(())
            })?;
        }
        if everyone {
            lock_plain(&self.cache).clear();
            return Ok(true);
        }
        let persons = store.coverage_named(&named)?;
        let mut identities: Vec<Identity> = named.identities().cloned().collect();
        for (current, _) in persons.encoded_persons() {
            if let Some(summary) = persons.person(current) {
                identities.push(summary.current);
                identities.extend(summary.former);
            }
        }
        lock_plain(&self.cache).forget(&Changed { identities, everyone: false });
        Ok(false)
    }

    /// After a panic mid-catch-up: the cache dropped, the tip and policies
    /// read from the store as its last transaction left them.
    fn reread(&self) -> Result<Arc<Coverage>> {
        lock_plain(&self.cache).clear();
        let writer = lock_plain(&self.writer);
        Ok(Arc::new(writer.coverage_of_many(&[]).context("reading the person store's tip")?))
    }

    /// Every person the store holds, read in one transaction without
    /// holding the tip's lock, so that catch-ups go on meanwhile (the
    /// audit's drift check, which skips itself when the store moved).
    pub fn whole(&self) -> Result<Coverage, StoreError> {
        self.with_reader(PersonStore::load_all)
    }

    pub fn cache_figures(&self) -> CacheFigures {
        let cache = lock_plain(&self.cache);
        CacheFigures {
            bytes: cache.bytes as u64,
            limit_bytes: cache.limit_bytes as u64,
            n_persons: cache.entries.len() as u64,
        }
    }

    /// Runs `read` on a reading connection of the pool (opened when none
    /// is free).
    pub fn with_reader<T>(&self, read: impl FnOnce(&PersonStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = lock_plain(&self.readers).pop();
        let reader = match pooled {
            Some(reader) => reader,
            None => {
                let reader = self.place.open()?;
                reader.set_page_cache_kib(READER_PAGE_CACHE_KIB)?;
                reader
            }
        };
        let answer = read(&reader);
        let mut readers = lock_plain(&self.readers);
        let max_readers = match self.place {
            PersonStorePlace::File(_) => MAX_FILE_READERS,
            PersonStorePlace::Database(_) => MAX_DATABASE_READERS,
        };
        if readers.len() < max_readers {
            readers.push(reader);
        }
        answer
    }
}

/// The store opened and caught up to the log's head (the family
/// projection in it), and a coverage of nobody at its tip.
fn caught_up_store(place: &PersonStorePlace, log: &dyn LogReader) -> Result<(PersonStore, Coverage), StoreError> {
    let mut store = place.open()?;
    let head = log.durable_head().position;
    let from = store.tip().ok().flatten().map_or(0, |tip| tip.position.min(head));
    if head > from {
        eprintln!("note: catching the person store up from position {from} to {head}");
    }
    let started = Instant::now();
    let mut last_said = Instant::now();
    let mut progress = |position: u64| {
        if last_said.elapsed() >= PROGRESS_INTERVAL {
            eprintln!("note: the person store is at position {position} of {head}");
            last_said = Instant::now();
        }
    };
    let chunk = operations::store_chunk_envelopes();
    let n_folded = store.catch_up_in_chunks(log, head, chunk, &mut progress)?;
    if n_folded > 0 {
        eprintln!("note: the person store folded {n_folded} records in {:.1} s", started.elapsed().as_secs_f64());
    }
    let at_tip = store.coverage_of_many(&[])?;
    store.set_page_cache_kib(WRITER_PAGE_CACHE_KIB)?;
    Ok((store, at_tip))
}

/// The store at one tip, held for reading.
pub struct AtTip<'a> {
    persons: &'a Persons,
    base: RwLockReadGuard<'a, Arc<Coverage>>,
}

impl AtTip<'_> {
    pub fn tip(&self) -> Tip {
        self.base.tip()
    }

    pub fn position(&self) -> u64 {
        self.base.position()
    }

    /// A coverage of nobody at the tip: the policies and the position.
    pub fn nobody(&self) -> &Coverage {
        &self.base
    }

    /// The person `identity` names, from the cache or the store: every
    /// question about them answers as on the whole projection. Nobody
    /// known by it: a coverage of nobody (not cached).
    pub fn person(&self, identity: &Identity) -> Result<Coverage, StoreError> {
        let persons = self.persons;
        if let Some(cached) = lock_plain(&persons.cache).get(identity) {
            persons.n_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cached.at_tip(self.tip()));
        }
        let mut named = Named::default();
        named.identity(identity);
        let coverage = self.named(&named)?;
        if coverage.n_persons() > 0 {
            lock_plain(&persons.cache).insert(identity.clone(), Arc::new(coverage.at_tip(self.tip())));
        }
        Ok(coverage)
    }

    /// The family records of the identities `named` speaks of (each under
    /// every identity the person had) and of the applications it names,
    /// read from the store at this tip (not cached).
    pub fn family(&self, named: &Named) -> Result<Family, StoreError> {
        self.persons.with_reader(|reader| reader.family_of(named))
    }

    /// A person's bindings and applications, under every identity they had.
    pub fn family_of_person(&self, person: &Identity) -> Result<Family, StoreError> {
        let mut named = Named::default();
        named.identity(person);
        self.family(&named)
    }

    /// The applications in flight submitted before `submitted_before`
    /// (all without it), at this tip.
    pub fn family_in_flight(&self, submitted_before: Option<BeijingTime>) -> Result<Family, StoreError> {
        self.persons.with_reader(|reader| reader.family_in_flight(submitted_before))
    }

    /// The persons and applications `named` speaks of, read from the
    /// store (not cached: what a write is judged against).
    pub fn named(&self, named: &Named) -> Result<Coverage, StoreError> {
        let mut coverage = self.base.at_tip(self.tip());
        self.persons.with_reader(|reader| reader.add_named(&mut coverage, named))?;
        self.persons.n_loaded.fetch_add(coverage.n_persons() as u64, Ordering::Relaxed);
        Ok(coverage)
    }
}

#[cfg(test)]
mod tests {
    use super::Folded;

    fn folded(positions: &[u64]) -> Folded {
        let mut folded = Folded::default();
        positions.iter().for_each(|&position| folded.add(position));
        folded
    }

    /// What another process folded: every position after the tip this
    /// process knew, up to the store's, that it did not fold itself.
    #[test]
    fn the_records_another_process_folded_are_the_gaps_between_ours() {
        assert_eq!(folded(&[]).gaps(10, 12), vec![(11, 12)]);
        assert_eq!(folded(&[11, 12]).gaps(10, 12), Vec::<(u64, u64)>::new());
        assert_eq!(folded(&[13, 14, 17]).gaps(10, 20), vec![(11, 12), (15, 16), (18, 20)]);
        assert_eq!(folded(&[11, 12, 13]).n_records(), 3);
        assert_eq!(folded(&[11, 13]).gaps(10, 13), vec![(12, 12)]);
    }
}
