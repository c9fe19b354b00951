//! The ledger commands: init, import, restore, log, verify, export —
//! adapters over `operations::import` and `operations::records`.

use crate::exit::{classified, BadInput, Findings};
use crate::output::ignore_broken_pipe;
use anyhow::{Context, Result};
use ledger::{LogStore, OpenMode};
use operations::channels::Channels;
use operations::import::{self, Imported};
use operations::records::{self, EnvelopeAnswer, ExportError, LogPage};
use operations::salvage::{RangeAnswer, SalvageAnswer};
use operations::Location;
use operations::StorageError;
use operations::{facts, Ledger};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

pub fn open(location: &Location, mode: OpenMode) -> Result<Box<dyn LogStore>> {
    location.open_log(mode).map_err(|error| {
        let at = operations::location::at_unless_named(&location.describe(), &error);
        anyhow::Error::new(error).context(format!("opening the ledger{at}"))
    })
}

/// The channels this ledger accepts: built in, plus `DIR/channels.toml`.
pub fn channels(location: &Location) -> Result<Channels> {
    Channels::load(&location.data).map_err(|e| BadInput(e.to_string()).into())
}

pub fn init(location: &Location) -> Result<()> {
    let made = records::init(location).map_err(classified)?;
    let verb = if made.created { "created" } else { "already holds" };
    outln!(
        "{}: {verb} ledger {} ({} chain, format {} v{})",
        location.describe(),
        made.ledger_id,
        made.hash_algorithm,
        made.format,
        made.format_version
    );
    outln!("head: position {}", made.head_position);
    Ok(())
}

fn file_label(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

fn reader(file: &Path) -> Result<Box<dyn BufRead>> {
    if file.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let opened = std::fs::File::open(file).map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, opened)))
}

/// `yibao import`'s choices besides the file.
#[derive(Clone, Copy, Debug)]
pub struct ImportArgs {
    pub chunk_facts: usize,
    pub json: bool,
}

impl Default for ImportArgs {
    fn default() -> ImportArgs {
        ImportArgs { chunk_facts: import::DEFAULT_CHUNK_FACTS, json: false }
    }
}

pub fn import(location: &Location, file: &Path, actor: Option<String>, args: ImportArgs) -> Result<()> {
    let label = file_label(file);
    let actor = actor.unwrap_or_else(|| {
        format!("import:{}", file.file_name().map_or(label.clone(), |n| n.to_string_lossy().into_owned()))
    });
    // Standard input is read more than once: kept in a file meanwhile.
    let spooled = if file.as_os_str() == "-" { Some(spool_stdin()?) } else { None };
    let path = spooled.as_ref().map_or(file, |spooled| spooled.path());
    if spooled.is_none() {
        std::fs::File::open(path).map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    }
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(classified)?;
    // A file's decided facts are judged against the log as it is.
    let _alone = location.decide_alone().map_err(|e| classified(StorageError::from(e)))?;
    import_into(&ledger, path, &label, &actor, args)
}

/// Standard input copied to a temporary file, removed when dropped.
fn spool_stdin() -> Result<tempfile::NamedTempFile> {
    let mut spooled = tempfile::NamedTempFile::new().context("a temporary file for standard input")?;
    std::io::copy(&mut std::io::stdin().lock(), &mut spooled).context("keeping standard input in a temporary file")?;
    spooled.flush().context("keeping standard input in a temporary file")?;
    Ok(spooled)
}

/// Checks all of `source`, then appends it chunk by chunk; prints what
/// was appended.
pub fn import_into<S: import::Source + ?Sized>(
    ledger: &Ledger,
    source: &S,
    label: &str,
    actor: &str,
    args: ImportArgs,
) -> Result<()> {
    let options = import::ImportOptions { chunk_facts: args.chunk_facts, show_progress: !args.json };
    let imported = import::import(ledger, source, label, actor, options).map_err(classified)?;
    // The Merkle tree store follows the log here, so that a proof later
    // reads only what came after; the facts are durable whatever it does.
    if let Err(error) = operations::proof::keep_tree_current(ledger) {
        eprintln!("note: the Merkle tree store was not caught up: {}", operations::error::chain(&error));
    }
    if args.json {
        outln!("{}", serde_json::to_string(&imported)?);
    } else {
        print_imported(label, &imported);
    }
    Ok(())
}

fn print_imported(label: &str, imported: &Imported) {
    let appended = &imported.appended;
    outln!(
        "{label}: {} facts, {} appended, {} already recorded",
        imported.n_facts,
        appended.n_appended,
        imported.n_repeated
    );
    if let (Some(first), Some(last)) = (appended.positions.iter().min(), appended.positions.iter().max()) {
        outln!("positions {first}..{last}; head {} {}", appended.head.position, appended.head.hash);
    }
    if appended.n_appended > 0 {
        let seconds = imported.durable_seconds;
        outln!(
            "durable in {:.3} s ({:.0} facts/s) in {} append(s) of at most {} facts, after {:.3} s of checks",
            seconds,
            appended.n_appended as f64 / seconds.max(1e-9),
            imported.n_chunks,
            imported.chunk_facts,
            imported.validation_seconds
        );
    }
    let store = &imported.person_store;
    if store.n_folded > 0 {
        outln!("person store at the head: {} records folded in {:.3} s", store.n_folded, store.seconds);
    }
}

pub fn log(location: &Location, from: u64, limit: usize, as_json: bool) -> Result<()> {
    let log = open(location, OpenMode::Read)?;
    let page = LogPage::new(&*log, from, limit);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !as_json && page.head == 0 {
        writeln!(out, "the log is empty").or_else(ignore_broken_pipe)?;
    }
    let mut write_error = None;
    page.scan(&*log, &mut |envelope| {
        if write_error.is_some() {
            return;
        }
        let written = if as_json {
            serde_json::to_writer(&mut out, &EnvelopeAnswer::new(&envelope, None))
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            let head = &envelope.head;
            writeln!(
                out,
                "{:>8}  {}  {:<24} {}",
                head.position,
                head.recorded_at,
                format!("{} v{}", envelope.event.type_name(), envelope.event.version()),
                facts::summary(&envelope.event)
            )
        };
        write_error = written.err();
    })
    .map_err(classified)?;
    if let Some(e) = write_error {
        // A closed pipe (`yibao log | head`) is not a failure of the ledger.
        return ignore_broken_pipe(e).map_err(Into::into);
    }
    if !as_json && page.to < page.head {
        let (to, head) = (page.to, page.head);
        writeln!(out, "... {} more; head at position {head} (use --from {})", head - to, to + 1)
            .or_else(ignore_broken_pipe)?;
    }
    out.flush().or_else(ignore_broken_pipe)?;
    Ok(())
}

/// What to do about a store sled cannot read.
const RESTORE_ADVICE: &str = "restore from an export (`yibao import --restore FILE`) into an empty data directory";

pub fn verify(location: &Location, from: u64, to: u64) -> Result<()> {
    let verified = records::verify(location, from, to).map_err(classified)?;
    let rate = verified.n_records as f64 / verified.seconds.max(1e-9);
    outln!("chain: {} ({}), header ledger {}", verified.hash_algorithm, location.describe(), verified.ledger_id);
    outln!(
        "checked positions {}..{}: {} records in {} blocks, {:.3} s, {:.0} records/s",
        verified.first_position,
        verified.last_good.position,
        verified.n_records,
        verified.n_blocks,
        verified.seconds,
        rate
    );
    if let Some(unfinished) = &verified.unfinished {
        outln!(
            "an unfinished append of {} records after position {} was found and is discarded (never acknowledged; the next open for writing removes it)",
            unfinished.n_records, unfinished.after
        );
    }
    match &verified.problem {
        None => {
            outln!("OK: head {} {}", verified.last_good.position, verified.last_good.hash);
            Ok(())
        }
        Some(problem) => {
            outln!("FAILED: {}", problem.description);
            if let Some(damage) = &verified.damage {
                print_damage(damage);
                let said = match damage.first_damaged {
                    Some(position) => format!("first damaged position {position}"),
                    None => "every record was read without sled".to_string(),
                };
                return Err(Findings(format!("the ledger store is damaged ({said}); {SALVAGE_ADVICE}")).into());
            }
            if problem.store_damaged {
                return Err(Findings(format!("the ledger store is damaged; {RESTORE_ADVICE}")).into());
            }
            Err(Findings(format!("verification failed at position {}", problem.position)).into())
        }
    }
}

/// What to do about a store sled cannot read, once its records were read
/// without sled.
const SALVAGE_ADVICE: &str = "write what can be read with `yibao salvage --out FILE`, then restore from a backup \
     (`yibao restore BACKUP_DIR --with FILE`), or restore from an export (`yibao import --restore FILE`) \
     into an empty data directory";

/// Verify's report of a store read without sled.
fn print_damage(damage: &SalvageAnswer) {
    let of_anchor =
        damage.anchor.as_ref().map_or(String::new(), |a| format!(" (the log held {} at its last close)", a.position));
    outln!(
        "read without sled: {} records that check{of_anchor}; the chain from genesis is unbroken to position {}",
        damage.n_records,
        damage.unbroken_to
    );
    match damage.first_damaged {
        Some(position) => outln!("first damaged position: {position}"),
        None => outln!("every record was read; the damage is in sled's own data"),
    }
    if !damage.gaps.is_empty() {
        outln!("could not read: positions {}", ranges(&damage.gaps));
    }
    if !damage.conflicts.is_empty() {
        outln!("other copies disagree at positions {:?} (the chain that goes furthest was taken)", damage.conflicts);
    }
    if !damage.header_found {
        outln!("the log's header was not found: its records cannot be restored from these files");
    }
    outln!("to recover: `yibao salvage --out FILE` writes every record read; restore from a backup with it (`yibao restore BACKUP_DIR --with FILE`), or `yibao import --restore FILE` when it has no gap");
}

/// `1..20, 31..40`.
fn ranges(ranges: &[RangeAnswer]) -> String {
    ranges.iter().map(|range| format!("{}..{}", range.first, range.last)).collect::<Vec<_>>().join(", ")
}

/// `yibao salvage --out FILE`: every record that can be read from a sled
/// store's files without sled, in the export format.
pub fn salvage(location: &Location, out_path: &Path) -> Result<()> {
    operations::salvage::check_backend(location).map_err(classified)?;
    let file = std::fs::File::create(out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let salvaged = records::export_salvage(location, &mut out).map_err(classified)?;
    let last = salvaged.last.as_ref().map_or("none".to_string(), |last| format!("{} {}", last.position, last.hash));
    outln!("salvaged {} records to {}; last record {last}", salvaged.n_records, out_path.display());
    outln!("the chain from genesis is unbroken to position {}", salvaged.unbroken_to);
    match salvaged.first_damaged {
        Some(position) => outln!("first break: position {position}"),
        None => outln!("no break: every record to the head of the last close was read"),
    }
    if !salvaged.gaps.is_empty() {
        outln!("gaps (not in the file): positions {}", ranges(&salvaged.gaps));
    }
    if !salvaged.conflicts.is_empty() {
        outln!("other copies disagree at positions {:?} (the chain that goes furthest was taken)", salvaged.conflicts);
    }
    if salvaged.n_unfinished > 0 {
        outln!("{} records of an append never finished were left out (never acknowledged)", salvaged.n_unfinished);
    }
    Ok(())
}

pub fn export(location: &Location, out_path: Option<&Path>) -> Result<()> {
    let log = open(location, OpenMode::Read)?;
    let sink: Box<dyn Write> = match out_path {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let exported = match records::export(&*log, &mut out) {
        Ok(exported) => exported,
        // A reader that went away (`yibao export | head`) is not a failure.
        Err(ExportError::Write(error)) if error.kind() == std::io::ErrorKind::BrokenPipe && out_path.is_none() => {
            return Ok(())
        }
        Err(error) => return Err(classified(error)),
    };
    if let Some(path) = out_path {
        outln!(
            "exported {} records to {}; head {} {}",
            exported.n_records,
            path.display(),
            exported.head.position,
            exported.head.hash
        );
    }
    Ok(())
}

pub fn restore(location: &Location, file: &Path) -> Result<()> {
    let label = file_label(file);
    let lines = import::numbered_lines(reader(file)?);
    let restored = records::restore(location, lines, &label).map_err(classified)?;
    outln!(
        "restored {} records from {label} into {} in {:.3} s",
        restored.head.position,
        location.describe(),
        restored.seconds
    );
    outln!("head {} {}", restored.head.position, restored.head.hash);
    match &restored.exported_head_hash {
        Some(expected) if !restored.matches_export() => {
            Err(Findings(format!("head hash {} differs from the exported head {expected}", restored.head.hash)).into())
        }
        Some(_) => {
            outln!("matches the exported head");
            Ok(())
        }
        None => Ok(()),
    }
}
