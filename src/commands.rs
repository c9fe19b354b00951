//! The ledger commands: init, import, restore, log, verify, export.

use crate::exit::{BadInput, Findings};
use crate::output::ignore_broken_pipe;
use anyhow::{Context, Result};
use ledger::log::block::BlockView;
use ledger::log::restore::{self as ledger_restore, ExportedRecord};
use ledger::log::VerifyProblem;
use ledger::{envelope, Envelope, LedgerError, NewEvent, OpenMode, SledLog};
use operations::channels::Channels;
use operations::facts::{self, LineError, MAX_ERRORS_SHOWN};
use operations::progress;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

pub fn open(data: &Path, mode: OpenMode) -> Result<SledLog> {
    SledLog::open(data, mode).with_context(|| format!("opening the ledger at {}", data.display()))
}

/// The channels this ledger accepts: built in, plus `DIR/channels.toml`.
pub fn channels(data: &Path) -> Result<Channels> {
    Channels::load(data).map_err(|e| BadInput(e.to_string()).into())
}

pub fn init(data: &Path) -> Result<()> {
    let existed = data.join("log").join("db").exists();
    let log = open(data, OpenMode::Create)?;
    let header = log.header();
    let verb = if existed { "already holds" } else { "created" };
    outln!(
        "{}: {verb} ledger {} ({} chain, format {} v{})",
        data.display(),
        header.ledger_id,
        header.hash_algorithm,
        header.format,
        header.format_version
    );
    outln!("head: position {}", log.durable_head().position);
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

/// Reads each line of a file, by number, as text; blank lines are skipped.
fn lines(file: &Path) -> Result<impl Iterator<Item = (usize, Result<String, LineError>)>> {
    Ok(numbered_lines(reader(file)?))
}

fn numbered_lines(reader: Box<dyn BufRead>) -> impl Iterator<Item = (usize, Result<String, LineError>)> {
    reader.split(b'\n').enumerate().filter_map(|(index, bytes)| {
        let line = index + 1;
        let text = match bytes {
            Err(e) => Err(LineError { line, field: None, message: format!("cannot read: {e}") }),
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| LineError { line, field: None, message: "not UTF-8 text".into() })
            }
        };
        match text {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some((line, Ok(text.trim_end_matches('\r').to_string()))),
            Err(e) => Some((line, Err(e))),
        }
    })
}

/// Parses a whole file of facts; any bad line refuses the file.
pub fn read_facts(
    input: Box<dyn BufRead>,
    label: &str,
    actor: &str,
    channels: &Channels,
) -> Result<(Vec<NewEvent>, Vec<usize>)> {
    let mut events = Vec::new();
    let mut line_numbers = Vec::new();
    let mut errors: Vec<LineError> = Vec::new();
    let mut n_errors = 0;
    for (line, text) in numbered_lines(input) {
        match text.and_then(|text| facts::parse_line_with(&text, line, actor, channels)) {
            Ok(event) => {
                events.push(event);
                line_numbers.push(line);
            }
            Err(error) => {
                n_errors += 1;
                if errors.len() < MAX_ERRORS_SHOWN {
                    errors.push(error);
                }
            }
        }
    }
    if n_errors > 0 {
        let mut message = format!("{label}: {n_errors} bad line(s); nothing from this file was appended");
        for error in &errors {
            message.push_str(&format!("\n  {label}:{error}"));
        }
        if n_errors > errors.len() {
            message.push_str(&format!("\n  ... and {} more", n_errors - errors.len()));
        }
        return Err(BadInput(message).into());
    }
    Ok((events, line_numbers))
}

pub fn import(data: &Path, file: &Path, actor: Option<String>) -> Result<()> {
    let label = file_label(file);
    let actor = actor.unwrap_or_else(|| {
        format!("import:{}", file.file_name().map_or(label.clone(), |n| n.to_string_lossy().into_owned()))
    });
    let input = reader(file)?;
    let log = open(data, OpenMode::Existing)?;
    import_into(&log, input, &label, &actor)
}

/// Parses all of `input`, then appends it as one atomic batch.
pub fn import_into(log: &SledLog, input: Box<dyn BufRead>, label: &str, actor: &str) -> Result<()> {
    let (events, line_numbers) = read_facts(input, label, actor, &channels(log.dir())?)?;
    // Bindings, proxy steps and refunds obey the rules (projections::family::decide).
    crate::family::check_import(log, &events, &line_numbers, label)?;
    let n_facts = events.len();
    let started = Instant::now();
    let outcome = log.append_blocking(events).map_err(|error| match error {
        LedgerError::InvalidEvent { index, error } => BadInput(format!(
            "{label}:line {}: field `{}`: {}; nothing from this file was appended",
            line_numbers.get(index).copied().unwrap_or(0),
            error.field,
            error.reason
        ))
        .into(),
        other => anyhow::Error::new(other).context(format!("{label}: nothing from this file was appended")),
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let n_repeated = n_facts - outcome.n_appended;
    outln!("{label}: {n_facts} facts, {} appended, {n_repeated} already recorded", outcome.n_appended);
    if let (Some(first), Some(last)) = (outcome.positions.iter().min(), outcome.positions.iter().max()) {
        outln!("positions {first}..{last}; head {} {}", outcome.head.position, hex::encode(outcome.head.hash));
    }
    if outcome.n_appended > 0 {
        outln!("durable in {:.3} s ({:.0} facts/s)", seconds, outcome.n_appended as f64 / seconds.max(1e-9));
    }
    Ok(())
}

/// One envelope as JSON: everything an auditor needs to check it.
pub fn envelope_json(envelope: &Envelope, stored: Option<&[u8]>) -> Value {
    let head = &envelope.head;
    let mut value = json!({
        "kind": "record",
        "position": head.position,
        "event_id": head.event_id,
        "recorded_at": head.recorded_at.to_string(),
        "stream": head.stream,
        "stream_version": head.stream_version,
        "actor": head.actor,
        "idempotency_key": head.idempotency_key,
        "type": envelope.event.type_name(),
        "v": envelope.event.version(),
        "event": facts::event_fields(&envelope.event),
        "prev_hash": hex::encode(envelope.prev_hash),
        "hash": hex::encode(envelope.hash),
    });
    if let (Some(stored), Value::Object(object)) = (stored, &mut value) {
        object.insert("stored".into(), Value::String(hex::encode(stored)));
    }
    value
}

pub fn log(data: &Path, from: u64, limit: usize, as_json: bool) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let head = log.durable_head().position;
    let to = head.min(from.max(1).saturating_add(limit as u64).saturating_sub(1));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !as_json && head == 0 {
        writeln!(out, "the log is empty").or_else(ignore_broken_pipe)?;
    }
    let mut write_error = None;
    log.scan(from, to, |envelope| {
        let written = if as_json {
            writeln!(out, "{}", envelope_json(&envelope, None))
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
        if let Err(e) = written {
            write_error = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = write_error {
        // A closed pipe (`yibao log | head`) is not a failure of the ledger.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if !as_json && to < head {
        writeln!(out, "... {} more; head at position {head} (use --from {})", head - to, to + 1)
            .or_else(ignore_broken_pipe)?;
    }
    out.flush().or_else(ignore_broken_pipe)?;
    Ok(())
}

/// What to do about a store sled cannot read.
const RESTORE_ADVICE: &str = "restore from an export (`yibao import --restore FILE`) into an empty data directory";

pub fn verify(data: &Path, from: u64, to: u64) -> Result<()> {
    let log = match SledLog::open(data, OpenMode::Audit) {
        Ok(log) => log,
        Err(LedgerError::StoreDamaged { detail }) => {
            outln!("FAILED: the ledger store at {} is damaged ({detail}): no position could be read", data.display());
            return Err(Findings(format!("the ledger store is damaged; {RESTORE_ADVICE}")).into());
        }
        Err(other) => {
            return Err(anyhow::Error::new(other).context(format!("opening the ledger at {}", data.display())))
        }
    };
    let head = log.durable_head().position;
    let last = if to == 0 { head } else { to.min(head) };
    let bar = progress::bar(last.saturating_sub(from.max(1)) + 1, "verifying");
    let started = Instant::now();
    let report = log.verify(from, to, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let rate = report.n_records as f64 / seconds.max(1e-9);
    outln!("chain: {} ({}), header ledger {}", log.header().hash_algorithm, data.display(), log.header().ledger_id);
    outln!(
        "checked positions {}..{}: {} records in {} blocks, {:.3} s, {:.0} records/s",
        report.first_position,
        report.last_good.position,
        report.n_records,
        report.n_blocks,
        seconds,
        rate
    );
    if let Some(unfinished) = report.unfinished {
        outln!(
            "an unfinished append of {} records after position {} was found and is discarded (never acknowledged; the next open for writing removes it)",
            unfinished.n_records, unfinished.after
        );
    }
    match &report.problem {
        None => {
            outln!("OK: head {} {}", report.last_good.position, hex::encode(report.last_good.hash));
            Ok(())
        }
        Some(problem @ VerifyProblem::Unreadable { .. }) => {
            outln!("FAILED: {problem}");
            Err(Findings(format!("the ledger store is damaged; {RESTORE_ADVICE}")).into())
        }
        Some(problem) => {
            outln!("FAILED: {problem}");
            Err(Findings(format!("verification failed at position {}", problem.position())).into())
        }
    }
}

pub fn export(data: &Path, out_path: Option<&Path>) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let head = log.durable_head();
    let sink: Box<dyn Write> = match out_path {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let header = log.header();
    let header_line = json!({
        "kind": "header",
        "format": header.format,
        "format_version": header.format_version,
        "hash_algorithm": header.hash_algorithm,
        "ledger_id": header.ledger_id,
        "created_at": header.created_at.to_string(),
        "genesis_hash": hex::encode(log.genesis_hash()),
        "head_position": head.position,
        "head_hash": hex::encode(head.hash),
        "bytes": hex::encode(log.header_bytes()),
    });
    writeln!(out, "{header_line}").or_else(ignore_broken_pipe)?;
    let bar = progress::bar(head.position, "exporting");
    let mut prev = log.genesis_hash();
    for item in log.blocks_from(1)? {
        let (_, bytes) = item?;
        let view = BlockView::parse(&bytes).map_err(|e| anyhow::anyhow!("damaged block: {e}; run `yibao verify`"))?;
        for record in view.records() {
            let record = record.map_err(|e| anyhow::anyhow!("damaged block: {e}; run `yibao verify`"))?;
            if record.position > head.position {
                break;
            }
            let (envelope_head, event) = envelope::decode_record(record.body)
                .map_err(|e| anyhow::anyhow!("position {}: {e}", record.position))?;
            let envelope = Envelope { head: envelope_head, event, prev_hash: prev, hash: record.hash };
            writeln!(out, "{}", envelope_json(&envelope, Some(record.body))).or_else(ignore_broken_pipe)?;
            prev = record.hash;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    out.flush().or_else(ignore_broken_pipe)?;
    if let Some(path) = out_path {
        outln!(
            "exported {} records to {}; head {} {}",
            head.position,
            path.display(),
            head.position,
            hex::encode(head.hash)
        );
    }
    Ok(())
}

fn hex_field(object: &Value, field: &str, line: usize) -> Result<Vec<u8>, LineError> {
    let text = object.get(field).and_then(Value::as_str).ok_or_else(|| LineError {
        line,
        field: Some(field.into()),
        message: "missing or not a string".into(),
    })?;
    hex::decode(text).map_err(|e| LineError { line, field: Some(field.into()), message: format!("not hex: {e}") })
}

fn export_record(text: &str, line: usize) -> Result<ExportedRecord, LineError> {
    let object: Value = serde_json::from_str(text).map_err(|e| LineError {
        line,
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    let position = object.get("position").and_then(Value::as_u64).ok_or_else(|| LineError {
        line,
        field: Some("position".into()),
        message: "missing or not a number".into(),
    })?;
    let stored = hex_field(&object, "stored", line)?;
    let hash: [u8; 32] = hex_field(&object, "hash", line)?.try_into().map_err(|_| LineError {
        line,
        field: Some("hash".into()),
        message: "not 32 bytes".into(),
    })?;
    Ok(ExportedRecord { position, stored, hash })
}

pub fn restore(data: &Path, file: &Path) -> Result<()> {
    let label = file_label(file);
    let mut lines = lines(file)?;
    let (line, header_text) = lines
        .next()
        .ok_or_else(|| BadInput(format!("{label}: empty, expected an export whose first line is the header")))?;
    let header_text = header_text.map_err(|e| BadInput(format!("{label}:{e}")))?;
    let header: Value = serde_json::from_str(&header_text)
        .map_err(|e| BadInput(format!("{label}:line {line}: malformed JSON: {e}")))?;
    if header.get("kind").and_then(Value::as_str) != Some("header") {
        return Err(BadInput(format!(
            "{label}:line {line}: field `kind`: expected \"header\" (is this an `export --jsonl` file?)"
        ))
        .into());
    }
    let header_bytes = hex_field(&header, "bytes", line).map_err(|e| BadInput(format!("{label}:{e}")))?;
    let mut input_error: Option<LineError> = None;
    let records = lines.map_while(|(line, text)| match text.and_then(|text| export_record(&text, line)) {
        Ok(record) => Some(Ok(record)),
        Err(error) => {
            input_error = Some(error);
            Some(Err(LedgerError::Corrupt { position: 0, reason: "unreadable export line".into() }))
        }
    });
    let started = Instant::now();
    let result = ledger_restore::restore(data, &header_bytes, records);
    if let Some(error) = input_error {
        return Err(BadInput(format!("{label}:{error}; nothing was restored")).into());
    }
    let head = match result {
        Ok(head) => head,
        Err(LedgerError::Corrupt { position, reason }) => {
            return Err(
                BadInput(format!("{label}: record at position {position}: {reason}; nothing was restored")).into()
            )
        }
        Err(other) => return Err(anyhow::Error::new(other).context(format!("restoring {label}"))),
    };
    outln!(
        "restored {} records from {label} into {} in {:.3} s",
        head.position,
        data.display(),
        started.elapsed().as_secs_f64()
    );
    outln!("head {} {}", head.position, hex::encode(head.hash));
    if let Some(expected) = header.get("head_hash").and_then(Value::as_str) {
        if expected != hex::encode(head.hash) {
            return Err(Findings(format!(
                "head hash {} differs from the exported head {expected}",
                hex::encode(head.hash)
            ))
            .into());
        }
        outln!("matches the exported head");
    }
    Ok(())
}
