//! A file of any size imported in bounded memory, in two passes. The
//! first validates every line without appending: each fact parsed and
//! put through the writer's own checks (`ledger::log::check_new_event`),
//! the file's keys compared among themselves (a fingerprint of each key
//! and of its content, 24 bytes a fact, sorted a chunk at a time and
//! merged at the end) and, chunk by chunk, probed against the log
//! (`LogStore::probe_blocking`, on a thread of its own while the next chunk
//! is read); a file with decided facts then has them judged (`decided`).
//! Only a file that passes is read again and appended, one chunk per
//! append, each durable once acknowledged, the next chunk read while the
//! log stores the last. Every fact carries its natural or content key, so
//! a rerun after an interruption finds the chunks already recorded as
//! repeats and appends the rest. Each reading after the first checks its
//! chunks against the first one's digests: a file changed meanwhile is
//! refused where it differs.

use super::decided::{self, Named};
use super::{append_batch, numbered_lines, Batch, ImportError, Imported, LineRefusal, PersonStoreCaughtUp};
use crate::channels::Channels;
use crate::error::{chain, StorageError};
use crate::facts::{self, LineError, MAX_ERRORS_SHOWN};
use crate::handle::Ledger;
use crate::progress;
use ledger::log::{check_new_event, MAX_EVENTS_PER_APPEND};
use ledger::{Head, LedgerError, LogStore, NewEvent};
use projections::family;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};

/// Facts per append unless the caller chooses. Measured on the 1M-person
/// year (2.1M facts): chunks of 50,000 to 500,000 take the same time; the
/// peak RSS grows with the chunk (1,155 MB at 100,000, 1,251 at 500,000).
pub const DEFAULT_CHUNK_FACTS: usize = 200_000;

/// Lines counted on the first pass's bar at once, not one by one.
const BAR_STEP: u64 = 4096;

/// Where an import reads its lines: opened once for each pass.
pub trait Source {
    fn open(&self) -> std::io::Result<Box<dyn BufRead + '_>>;
}

impl Source for [u8] {
    fn open(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(self))
    }
}

impl Source for Path {
    fn open(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        let file = std::fs::File::open(self)?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }
}

/// How an import runs.
#[derive(Clone, Copy, Debug)]
pub struct ImportOptions {
    /// Facts per append (at most `MAX_EVENTS_PER_APPEND`).
    pub chunk_facts: usize,
    /// Progress bars on standard error (on a terminal only) and a note per
    /// chunk recorded.
    pub show_progress: bool,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions { chunk_facts: DEFAULT_CHUNK_FACTS, show_progress: true }
    }
}

/// A fact as the first pass keeps it: its key and its content, hashed.
/// The key in two halves (high first, so that the order is the key's):
/// 24 bytes a fact, where a `u128` field would align the whole to 32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct KeyContent {
    key_high: u64,
    key_low: u64,
    content: u64,
}

const _: () = assert!(std::mem::size_of::<KeyContent>() == 24);

impl KeyContent {
    fn new(key: u128, content: u64) -> KeyContent {
        KeyContent { key_high: (key >> 64) as u64, key_low: key as u64, content }
    }

    fn key(&self) -> u128 {
        (u128::from(self.key_high) << 64) | u128::from(self.key_low)
    }
}

/// The file's facts' keys, fingerprinted with a seed of this run's own,
/// so that no file can be made whose keys collide.
#[derive(Clone, Copy)]
struct Fingerprints {
    seed: u64,
}

impl Fingerprints {
    fn new() -> Fingerprints {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5949_4241_4f5f_494d);
        Fingerprints { seed: hasher.finish() }
    }

    fn key(&self, key: &str) -> u128 {
        xxh3_128_with_seed(key.as_bytes(), self.seed)
    }

    fn of(&self, new: &NewEvent, event_bytes: &[u8]) -> KeyContent {
        // A fact's stream follows from its content, as its key does.
        KeyContent::new(self.key(&new.idempotency_key), xxh3_64_with_seed(event_bytes, !self.seed))
    }
}

/// What the first pass found in a file that passed.
struct Validated {
    n_facts: usize,
    has_decided: bool,
    /// A digest of each chunk's lines, so the second pass appends what
    /// the first one checked.
    chunk_digests: Vec<u64>,
    /// What the decided facts and conversions name.
    named: Named,
}

/// A chunk of facts being gathered, with a digest of its lines' text.
struct Chunk {
    batch: Batch,
    digest: Xxh3,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk { batch: Batch::default(), digest: Xxh3::new() }
    }

    fn push(&mut self, new: NewEvent, line: usize, text: &str) {
        self.digest.update(text.as_bytes());
        self.digest.update(b"\n");
        self.batch.events.push(new);
        self.batch.line_numbers.push(line);
    }

    fn len(&self) -> usize {
        self.batch.events.len()
    }

    /// The chunk's batch and digest; the chunk starts again empty.
    fn take(&mut self) -> (Batch, u64) {
        let taken = std::mem::replace(self, Chunk::new());
        (taken.batch, taken.digest.digest())
    }
}

/// Notes a full chunk's digest and hands it to the prober, while it probes.
fn close_chunk(chunk: &mut Chunk, validated: &mut Validated, probing: &mut Option<std::sync::mpsc::SyncSender<Batch>>) {
    let (batch, digest) = chunk.take();
    validated.chunk_digests.push(digest);
    if let Some(to_probe) = probing.as_ref() {
        if to_probe.send(batch).is_err() {
            // The prober stopped at a conflict or an error: its answer counts.
            *probing = None;
        }
    }
}

/// The lines of a file read again, compared chunk by chunk with the
/// digests the first pass took.
struct Recheck<'a> {
    digests: &'a [u64],
    chunk_facts: usize,
    n_lines: usize,
    digest: Xxh3,
    /// The line the chunk being read began with.
    chunk_first_line: usize,
}

impl<'a> Recheck<'a> {
    fn new(validated: &'a Validated, chunk_facts: usize) -> Recheck<'a> {
        Recheck { digests: &validated.chunk_digests, chunk_facts, n_lines: 0, digest: Xxh3::new(), chunk_first_line: 1 }
    }

    /// Takes the next line; `false` once its chunk differs.
    fn line(&mut self, line: usize, text: &str) -> bool {
        if self.n_lines.is_multiple_of(self.chunk_facts) {
            self.chunk_first_line = line;
        }
        self.digest.update(text.as_bytes());
        self.digest.update(b"\n");
        self.n_lines += 1;
        if !self.n_lines.is_multiple_of(self.chunk_facts) {
            return true;
        }
        let digest = std::mem::replace(&mut self.digest, Xxh3::new()).digest();
        self.digests.get(self.n_lines / self.chunk_facts - 1) == Some(&digest)
    }

    /// Whether every chunk was read, and the same.
    fn is_complete(&self) -> bool {
        let n_full = self.n_lines / self.chunk_facts;
        match self.n_lines % self.chunk_facts {
            0 => n_full == self.digests.len(),
            _ => n_full + 1 == self.digests.len() && self.digests.last() == Some(&self.digest.digest()),
        }
    }
}

/// `yibao import`: the file validated whole (every bad line named, every
/// key the log or the file holds with other content named, the decided
/// facts judged; nothing appended), then appended chunk by chunk. A file
/// of at most one chunk is one append, all or none, as ever.
pub fn import<S: Source + ?Sized>(
    ledger: &Ledger,
    source: &S,
    label: &str,
    actor: &str,
    options: ImportOptions,
) -> Result<Imported, ImportError> {
    let channels = ledger.channels()?;
    let chunk_facts = options.chunk_facts.clamp(1, MAX_EVENTS_PER_APPEND);
    let run = Run { log: ledger.log(), label, actor, channels, chunk_facts, options };
    let started = Instant::now();
    let validated = run.validate(source)?;
    if validated.has_decided {
        run.judge(ledger, source, &validated)?;
    }
    let mut imported = run.append_chunks(source, &validated, started.elapsed().as_secs_f64())?;
    // Also when nothing was appended: an import killed after its appends
    // and run again leaves the store at the head all the same.
    imported.person_store = bring_person_store_up(ledger);
    Ok(imported)
}

/// The person store brought to the head after the facts are durable, so
/// that the first lookup or service start after an import of a year reads
/// the store instead of folding the year. The facts are recorded whatever
/// happens here: a failure is said, and the next reader catches up.
fn bring_person_store_up(ledger: &Ledger) -> PersonStoreCaughtUp {
    let started = Instant::now();
    let n_folded = ledger.catch_up_person_store().unwrap_or_else(|error| {
        eprintln!(
            "note: the facts are recorded; the person store was not caught up ({}): the next lookup does it",
            chain(&error)
        );
        0
    });
    PersonStoreCaughtUp { n_folded, seconds: started.elapsed().as_secs_f64() }
}

/// One import's settings.
struct Run<'a> {
    log: &'a dyn LogStore,
    label: &'a str,
    actor: &'a str,
    channels: &'a Channels,
    chunk_facts: usize,
    options: ImportOptions,
}

/// The first pass's findings so far.
#[derive(Default)]
struct Findings {
    n_bad_lines: usize,
    bad_lines: Vec<LineError>,
}

/// A key the log holds with other content than a line of the file.
struct LogConflict {
    key: String,
    original_position: u64,
    /// The lines of the chunk it was found in.
    lines: std::ops::RangeInclusive<usize>,
}

impl Findings {
    fn bad_line(&mut self, error: LineError) {
        self.n_bad_lines += 1;
        if self.bad_lines.len() < MAX_ERRORS_SHOWN {
            self.bad_lines.push(error);
        }
    }
}

impl Run<'_> {
    fn read_error(&self, source: std::io::Error) -> ImportError {
        ImportError::Read { label: self.label.to_string(), source }
    }

    fn storage(&self, source: LedgerError) -> ImportError {
        ImportError::Storage { label: self.label.to_string(), source: StorageError::Ledger(source) }
    }

    /// The first pass: every line checked, nothing appended. Each chunk is
    /// probed against the log while the next one is read.
    fn validate<S: Source + ?Sized>(&self, source: &S) -> Result<Validated, ImportError> {
        let fingerprints = Fingerprints::new();
        let (to_probe, chunks) = std::sync::mpsc::sync_channel::<Batch>(1);
        let (read, probed) = std::thread::scope(|scope| {
            let prober = scope.spawn(|| self.probe_all(chunks));
            let read = self.read_checked(source, fingerprints, to_probe);
            (read, prober.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let (validated, keys, findings) = read?;
        if findings.n_bad_lines > 0 {
            let label = self.label.to_string();
            return Err(ImportError::Lines { label, n_errors: findings.n_bad_lines, errors: findings.bad_lines });
        }
        let log_conflict = probed?;
        let (n_in_file, in_file) = conflicting_keys(keys);
        if log_conflict.is_some() || n_in_file > 0 {
            let found = self.find_conflicts(source, log_conflict.as_ref(), &in_file, fingerprints)?;
            let n_conflicts = n_in_file + usize::from(log_conflict.is_some());
            return Err(ImportError::Conflicts { label: self.label.to_string(), n_conflicts, conflicts: found });
        }
        Ok(validated)
    }

    /// Reads and checks every line, handing each chunk to the prober while
    /// the file is clean.
    fn read_checked<S: Source + ?Sized>(
        &self,
        source: &S,
        fingerprints: Fingerprints,
        to_probe: std::sync::mpsc::SyncSender<Batch>,
    ) -> Result<(Validated, KeyRuns, Findings), ImportError> {
        let bar = self.counter("validating");
        let mut keys = KeyRuns::default();
        let mut findings = Findings::default();
        let mut validated =
            Validated { n_facts: 0, has_decided: false, chunk_digests: Vec::new(), named: Named::default() };
        let mut chunk = Chunk::new();
        let mut probing = Some(to_probe);
        for (line, text) in numbered_lines(source.open().map_err(|e| self.read_error(e))?) {
            if (line as u64).is_multiple_of(BAR_STEP) {
                bar.set_position(line as u64);
            }
            let checked = text.and_then(|text| {
                let new = facts::parse_line_with(&text, line, self.actor, self.channels)?;
                let event_bytes = check_new_event(&new, 0).map_err(|error| writer_line_error(line, error))?;
                Ok((new, event_bytes, text))
            });
            let (new, event_bytes, text) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    findings.bad_line(error);
                    // Nothing will be appended: the log need not be asked.
                    probing = None;
                    continue;
                }
            };
            keys.push(fingerprints.of(&new, &event_bytes), self.chunk_facts);
            validated.n_facts += 1;
            validated.has_decided |= family::is_decided(&new.event);
            validated.named.note(&new.event);
            chunk.push(new, line, &text);
            if chunk.len() == self.chunk_facts {
                keys.close_run();
                close_chunk(&mut chunk, &mut validated, &mut probing);
            }
        }
        if chunk.len() > 0 {
            keys.close_run();
            close_chunk(&mut chunk, &mut validated, &mut probing);
        }
        bar.finish_and_clear();
        Ok((validated, keys, findings))
    }

    /// Asks the log what appending each chunk would do, until one holds a
    /// key with other content.
    fn probe_all(&self, chunks: std::sync::mpsc::Receiver<Batch>) -> Result<Option<LogConflict>, ImportError> {
        for batch in chunks {
            let first_line = batch.line_numbers.first().copied().unwrap_or(0);
            let last_line = batch.line_numbers.last().copied().unwrap_or(0);
            match self.log.probe_blocking(batch.events) {
                Ok(_) => {}
                Err(LedgerError::IdempotencyConflict { key, original_position }) => {
                    return Ok(Some(LogConflict { key, original_position, lines: first_line..=last_line }));
                }
                Err(error) => return Err(self.storage(error)),
            }
        }
        Ok(None)
    }

    /// The lines whose key the log, or an earlier line, holds with other
    /// content: the file is read once more to find them (at most
    /// `MAX_ERRORS_SHOWN` keys of the file, in the order of their lines).
    fn find_conflicts<S: Source + ?Sized>(
        &self,
        source: &S,
        log_conflict: Option<&LogConflict>,
        in_file: &[u128],
        fingerprints: Fingerprints,
    ) -> Result<Vec<LineRefusal>, ImportError> {
        // By key fingerprint: the first line with it and a digest of its
        // content, once a conflicting line was named.
        let mut first: HashMap<u128, Option<(usize, u64, bool)>> = in_file.iter().map(|&key| (key, None)).collect();
        let mut refusals = Vec::new();
        let mut log_line = None;
        for (line, text) in numbered_lines(source.open().map_err(|e| self.read_error(e))?) {
            let Ok(new) = text.and_then(|text| facts::parse_line_with(&text, line, self.actor, self.channels)) else {
                return Err(self.changed(line));
            };
            if let Some(conflict) = log_conflict.filter(|c| log_line.is_none() && c.lines.contains(&line)) {
                if new.idempotency_key == conflict.key {
                    log_line = Some(line);
                    let reason = format!(
                        "`{}` is the key of the fact recorded at position {}, whose content is other",
                        conflict.key, conflict.original_position
                    );
                    refusals.push(LineRefusal { line, field: Some("idempotency_key"), reason });
                }
            }
            let Some(seen) = first.get_mut(&fingerprints.key(&new.idempotency_key)) else { continue };
            let event_bytes = check_new_event(&new, 0).map_err(|_| self.changed(line))?;
            let content = fingerprints.of(&new, &event_bytes).content;
            match *seen {
                None => *seen = Some((line, content, false)),
                Some((earlier, original, false)) if original != content => {
                    *seen = Some((earlier, original, true));
                    let reason =
                        format!("`{}` is also the key of line {earlier}, whose content is other", new.idempotency_key);
                    refusals.push(LineRefusal { line, field: Some("idempotency_key"), reason });
                }
                Some(_) => {}
            }
        }
        refusals.sort_by_key(|refusal| refusal.line);
        Ok(refusals)
    }

    fn changed(&self, line: usize) -> ImportError {
        ImportError::Changed { label: self.label.to_string(), line }
    }

    /// The decision of a file with facts the rules decide, against the
    /// projections at the head (the persons it names, from the person
    /// store) plus the file's earlier facts.
    fn judge<S: Source + ?Sized>(&self, ledger: &Ledger, source: &S, validated: &Validated) -> Result<(), ImportError> {
        let storage = |source| ImportError::Storage { label: self.label.to_string(), source };
        let at = ledger.projections_naming(&validated.named.for_store()).map_err(storage)?;
        let bar = self.counter("judging");
        // The lines judged are the lines validated, chunk by chunk.
        let mut recheck = Recheck::new(validated, self.chunk_facts);
        let mut changed_at = None;
        let lines = numbered_lines(source.open().map_err(|e| self.read_error(e))?).map_while(|(line, text)| {
            if (line as u64).is_multiple_of(BAR_STEP) {
                bar.set_position(line as u64);
            }
            match &text {
                Ok(same) if recheck.line(line, same) => Some((line, text)),
                _ => {
                    changed_at = Some(recheck.chunk_first_line.min(line));
                    None
                }
            }
        });
        let parse = |line, text: &str| facts::parse_line_with(text, line, self.actor, self.channels).ok();
        let judged = decided::judge(lines, parse, &validated.named, &at, self.label);
        bar.finish_and_clear();
        match changed_at {
            Some(line) => Err(self.changed(line)),
            None if !recheck.is_complete() => Err(self.changed(recheck.n_lines + 1)),
            None => judged,
        }
    }

    /// The second pass: the file read again and appended chunk by chunk,
    /// each chunk checked to be the one the first pass validated. The next
    /// chunk is read while the log stores the last one.
    fn append_chunks<S: Source + ?Sized>(
        &self,
        source: &S,
        validated: &Validated,
        validation_seconds: f64,
    ) -> Result<Imported, ImportError> {
        let bar = self.bar(validated.n_facts as u64, "appending");
        let n_chunks = validated.chunk_digests.len();
        // One chunk read ahead: memory holds two at most.
        let (to_append, chunks) = std::sync::mpsc::sync_channel::<(Batch, u64)>(1);
        let (read, appended) = std::thread::scope(|scope| {
            let appender = scope.spawn(|| self.append_all(chunks, validated, &bar));
            let read = self.read_chunks(source, to_append);
            let appended = appender.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (read, appended)
        });
        bar.finish_and_clear();
        let appended = appended?;
        let last_read = match read {
            Err(error) => return Err(self.stopped(&appended, n_chunks, error)),
            Ok(last_read) => last_read,
        };
        if appended.n_chunks != n_chunks || appended.positions.len() != validated.n_facts {
            return Err(self.stopped(&appended, n_chunks, self.changed(last_read.max(appended.last_line + 1))));
        }
        let n_appended = appended.n_appended;
        Ok(Imported {
            n_facts: validated.n_facts,
            n_repeated: validated.n_facts - n_appended,
            appended: super::Appended { positions: appended.positions, n_appended, head: appended.head },
            durable_seconds: appended.durable_seconds,
            n_chunks,
            chunk_facts: self.chunk_facts,
            validation_seconds,
            // Brought to the head by `import` once the chunks are appended.
            person_store: PersonStoreCaughtUp::default(),
        })
    }

    /// Reads the file into chunks for the appender, until its end or until
    /// the appender stops; returns the last line read.
    fn read_chunks<S: Source + ?Sized>(
        &self,
        source: &S,
        to_append: std::sync::mpsc::SyncSender<(Batch, u64)>,
    ) -> Result<usize, ImportError> {
        let mut chunk = Chunk::new();
        let mut last_line = 0;
        for (line, text) in numbered_lines(source.open().map_err(|e| self.read_error(e))?) {
            last_line = line;
            let parsed =
                text.and_then(|text| Ok((facts::parse_line_with(&text, line, self.actor, self.channels)?, text)));
            let Ok((new, text)) = parsed else { return Err(self.changed(line)) };
            chunk.push(new, line, &text);
            if chunk.len() == self.chunk_facts && to_append.send(chunk.take()).is_err() {
                // The appender stopped: its error is the answer.
                return Ok(last_line);
            }
        }
        if chunk.len() > 0 {
            let _ = to_append.send(chunk.take());
        }
        Ok(last_line)
    }

    /// Appends each chunk read, in order, each checked against the first
    /// pass's digest of it.
    fn append_all(
        &self,
        chunks: std::sync::mpsc::Receiver<(Batch, u64)>,
        validated: &Validated,
        bar: &indicatif::ProgressBar,
    ) -> Result<Appending, ImportError> {
        let mut appended = Appending::new(self.log.durable_head(), validated.n_facts);
        for (batch, digest) in chunks {
            self.append_chunk(batch, digest, &mut appended, validated, bar)?;
        }
        Ok(appended)
    }

    fn append_chunk(
        &self,
        batch: Batch,
        digest: u64,
        appended: &mut Appending,
        validated: &Validated,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), ImportError> {
        let n_chunks = validated.chunk_digests.len();
        let last_line = batch.line_numbers.last().copied().unwrap_or(appended.last_line);
        if validated.chunk_digests.get(appended.n_chunks) != Some(&digest) {
            let first_line = batch.line_numbers.first().copied().unwrap_or(last_line);
            return Err(self.stopped(appended, n_chunks, self.changed(first_line)));
        }
        let n_facts = batch.events.len() as u64;
        let started = Instant::now();
        let outcome = append_batch(self.log, batch, self.label).map_err(|e| self.stopped(appended, n_chunks, e))?;
        appended.durable_seconds += started.elapsed().as_secs_f64();
        appended.n_chunks += 1;
        appended.n_appended += outcome.n_appended;
        appended.head = outcome.head.clone();
        appended.last_line = last_line;
        bar.inc(n_facts);
        if self.options.show_progress && n_chunks > 1 {
            bar.suspend(|| {
                eprintln!(
                    "note: {}: chunk {} of {} recorded: through line {last_line}, {} new, head {}",
                    self.label, appended.n_chunks, n_chunks, outcome.n_appended, outcome.head.position
                )
            });
        }
        appended.positions.extend(outcome.positions);
        Ok(())
    }

    /// An error in the second pass: after the first chunk, the chunks
    /// before it are recorded, and the error says so.
    fn stopped(&self, appended: &Appending, n_chunks: usize, error: ImportError) -> ImportError {
        if appended.n_chunks == 0 {
            return error;
        }
        ImportError::Stopped {
            label: self.label.to_string(),
            n_chunks_recorded: appended.n_chunks,
            n_chunks,
            last_line: appended.last_line,
            source: Box::new(error),
        }
    }

    fn counter(&self, what: &str) -> indicatif::ProgressBar {
        if self.options.show_progress {
            progress::counter(what, "lines")
        } else {
            indicatif::ProgressBar::hidden()
        }
    }

    fn bar(&self, total: u64, what: &str) -> indicatif::ProgressBar {
        if self.options.show_progress {
            progress::bar(total, what)
        } else {
            indicatif::ProgressBar::hidden()
        }
    }
}

/// The second pass so far.
struct Appending {
    positions: Vec<u64>,
    n_appended: usize,
    n_chunks: usize,
    head: super::HeadAnswer,
    durable_seconds: f64,
    /// The last line of the last chunk recorded.
    last_line: usize,
}

impl Appending {
    fn new(head: Head, n_facts: usize) -> Appending {
        Appending {
            positions: Vec::with_capacity(n_facts),
            n_appended: 0,
            n_chunks: 0,
            head: head.into(),
            durable_seconds: 0.0,
            last_line: 0,
        }
    }
}

/// A fact the writer would refuse, as a bad line naming its field.
fn writer_line_error(line: usize, error: LedgerError) -> LineError {
    match error {
        LedgerError::InvalidEvent { error, .. } => {
            LineError { line, field: Some(error.field.to_string()), message: error.reason }
        }
        LedgerError::TooLarge { what, .. } => {
            let field = match what {
                "an idempotency key" => Some("idempotency_key".to_string()),
                _ => None,
            };
            LineError { line, field, message: error.to_string() }
        }
        other => LineError { line, field: None, message: other.to_string() },
    }
}

/// The file's key fingerprints, in sorted runs of one chunk each: 24
/// bytes a fact, allocated a chunk at a time (never a whole copy of
/// them growing), merged at the end.
#[derive(Default)]
struct KeyRuns {
    runs: Vec<Vec<KeyContent>>,
    open: Vec<KeyContent>,
}

impl KeyRuns {
    fn push(&mut self, key: KeyContent, chunk_facts: usize) {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(chunk_facts);
        }
        self.open.push(key);
    }

    fn close_run(&mut self) {
        let mut run = std::mem::take(&mut self.open);
        run.sort_unstable();
        run.shrink_to_fit();
        self.runs.push(run);
    }

    /// Every fingerprint, in order.
    fn merged(self) -> impl Iterator<Item = KeyContent> {
        let mut runs: Vec<std::vec::IntoIter<KeyContent>> = self.runs.into_iter().map(Vec::into_iter).collect();
        let mut heads: BinaryHeap<Reverse<(KeyContent, usize)>> = BinaryHeap::with_capacity(runs.len());
        for (run_idx, run) in runs.iter_mut().enumerate() {
            if let Some(first) = run.next() {
                heads.push(Reverse((first, run_idx)));
            }
        }
        std::iter::from_fn(move || {
            let Reverse((next, run_idx)) = heads.pop()?;
            if let Some(after) = runs[run_idx].next() {
                heads.push(Reverse((after, run_idx)));
            }
            Some(next)
        })
    }
}

/// How many keys the file gives facts of more than one content, and the
/// first `MAX_ERRORS_SHOWN` of them.
fn conflicting_keys(keys: KeyRuns) -> (usize, Vec<u128>) {
    let mut n_conflicting = 0;
    let mut named: Vec<u128> = Vec::new();
    let mut last_counted = None;
    let mut previous: Option<KeyContent> = None;
    for next in keys.merged() {
        if let Some(previous) = previous.filter(|p| p.key() == next.key() && p.content != next.content) {
            if last_counted != Some(previous.key()) {
                last_counted = Some(previous.key());
                n_conflicting += 1;
                if named.len() < MAX_ERRORS_SHOWN {
                    named.push(previous.key());
                }
            }
        }
        previous = Some(next);
    }
    (n_conflicting, named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::OpenMode;

    const FACTS: &str = include_str!("../../../fixtures/demo/facts.jsonl");

    fn keys_recorded(ledger: &Ledger) -> Vec<String> {
        let mut keys = Vec::new();
        let log: &dyn ledger::LogReader = ledger.log();
        log.scan(1, u64::MAX, |envelope| {
            keys.push(envelope.head.idempotency_key);
            Ok(())
        })
        .expect("scan");
        keys
    }

    /// The demo's facts, decided ones among them, are recorded alike
    /// whatever the chunks: the same facts in the same order, and again as
    /// repeats.
    #[test]
    fn chunks_of_any_size_record_what_one_append_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let whole =
            Ledger::open(&crate::Location::sled(&dir.path().join("whole")), OpenMode::Create).expect("a ledger");
        let options = |chunk_facts| ImportOptions { chunk_facts, show_progress: false };
        let one = import(&whole, FACTS.as_bytes(), "facts.jsonl", "test", options(DEFAULT_CHUNK_FACTS)).expect("one");
        assert_eq!(one.n_chunks, 1);
        for chunk_facts in [1, 2, 5] {
            let chunked =
                Ledger::open(&crate::Location::sled(&dir.path().join(format!("by-{chunk_facts}"))), OpenMode::Create)
                    .expect("ledger");
            let imported =
                import(&chunked, FACTS.as_bytes(), "facts.jsonl", "test", options(chunk_facts)).expect("chunks");
            assert_eq!(imported.n_chunks, one.n_facts.div_ceil(chunk_facts));
            assert_eq!(
                (imported.appended.n_appended, &imported.appended.positions),
                (one.appended.n_appended, &one.appended.positions)
            );
            assert_eq!(keys_recorded(&chunked), keys_recorded(&whole), "chunks of {chunk_facts}");
            let again = import(&chunked, FACTS.as_bytes(), "facts.jsonl", "test", options(chunk_facts)).expect("again");
            assert_eq!((again.n_repeated, again.appended.n_appended), (one.n_facts, 0));
        }
    }

    /// A file whose content changes from the `changes_at`-th reading on.
    struct Changing {
        n_opened: std::cell::Cell<usize>,
        changes_at: usize,
        changed: String,
    }

    impl Source for Changing {
        fn open(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
            self.n_opened.set(self.n_opened.get() + 1);
            let text = if self.n_opened.get() >= self.changes_at { &self.changed } else { FACTS };
            Ok(Box::new(text.as_bytes()))
        }
    }

    /// Lines changed after the first pass are never judged or appended
    /// unchecked: the import stops at the first chunk that differs, and
    /// says which chunks are recorded.
    #[test]
    fn a_file_changed_after_its_validation_is_refused_where_it_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines: Vec<&str> = FACTS.lines().collect();
        let changed_line = lines.len() - 2;
        let mut changed: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
        changed[changed_line - 1] = changed[changed_line - 1].replacen(", ", ",  ", 1);
        assert_ne!(changed[changed_line - 1], lines[changed_line - 1], "a line changed");
        let changed = changed.join("\n");
        let options = ImportOptions { chunk_facts: 4, show_progress: false };
        // Changed before the decision (the second reading), then before the appends (the third).
        for changes_at in [2, 3] {
            let ledger =
                Ledger::open(&crate::Location::sled(&dir.path().join(format!("at-{changes_at}"))), OpenMode::Create)
                    .expect("ledger");
            let source = Changing { n_opened: 0.into(), changes_at, changed: changed.clone() };
            let error = import(&ledger, &source, "f.jsonl", "test", options).expect_err("a changed file");
            let chunk_start = (changed_line - 1) / 4 * 4 + 1;
            match (&error, changes_at) {
                (ImportError::Changed { line, .. }, 2) => assert_eq!(*line, chunk_start, "{error}"),
                (ImportError::Stopped { n_chunks_recorded, source, .. }, 3) => {
                    assert_eq!(*n_chunks_recorded, (chunk_start - 1) / 4, "{error}");
                    assert!(matches!(**source, ImportError::Changed { line, .. } if line == chunk_start), "{error}");
                }
                _ => panic!("changed at reading {changes_at}: {error}"),
            }
            let recorded = keys_recorded(&ledger).len();
            assert_eq!(recorded, if changes_at == 2 { 0 } else { chunk_start - 1 }, "{error}");
        }
    }

    #[test]
    fn keys_of_more_than_one_content_are_counted_once_each() {
        let fact = KeyContent::new;
        let facts = [fact(1, 10), fact(2, 20), fact(1, 11), fact(1, 12), fact(3, 30), fact(2, 20), fact(3, 31)];
        for chunk_facts in [1, 2, 3, 7] {
            let mut keys = KeyRuns::default();
            for chunk in facts.chunks(chunk_facts) {
                chunk.iter().for_each(|&key| keys.push(key, chunk_facts));
                keys.close_run();
            }
            assert_eq!(conflicting_keys(keys), (2, vec![1, 3]), "runs of {chunk_facts}");
        }
    }
}
