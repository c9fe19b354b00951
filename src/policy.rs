//! `yibao policy load`: a region-year policy document into the log.

use crate::commands::open;
use crate::exit::BadInput;
use anyhow::{Context, Result};
use ledger::event::{PolicyAmended, PolicyPublished};
use ledger::{Event, LogBackend, OpenMode};
use projections::policy::Policy;
use std::path::Path;

/// What loading a document did.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    Published { position: u64 },
    Amended { position: u64 },
    Unchanged { position: u64 },
}

pub fn load(data: &Path, file: &Path, reason: Option<String>) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let (policy, loaded) = load_into(&log, file, reason)?;
    report(file, &policy, loaded);
    Ok(())
}

pub fn report(file: &Path, policy: &Policy, loaded: Loaded) {
    let (region, year) = policy.key();
    let what = format!("{} {region} {year}", policy.region_name());
    match loaded {
        Loaded::Published { position } => {
            outln!("{}: published policy {what} at position {position}", file.display())
        }
        Loaded::Amended { position } => outln!("{}: amended policy {what} at position {position}", file.display()),
        Loaded::Unchanged { position } => {
            outln!("{}: policy {what} is already recorded at position {position}; nothing appended", file.display())
        }
    }
}

const POLICY_FLAGS: crate::single::FlagNames = &[("reason", "--reason")];

/// Validates the document and appends it: published if the log has no
/// policy for its region and year, amended if the content differs from the
/// latest, nothing if it is the same.
pub fn load_into(log: &impl LogBackend, file: &Path, reason: Option<String>) -> Result<(Policy, Loaded)> {
    let document =
        std::fs::read_to_string(file).map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    load_document(log, file, document, reason)
}

/// As [`load_into`], for a document already read; `file` names it.
pub fn load_document(
    log: &impl LogBackend,
    file: &Path,
    document: String,
    reason: Option<String>,
) -> Result<(Policy, Loaded)> {
    let policy = Policy::from_toml(&document).map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
    let (region, coverage_year) = policy.key();
    let stream = Event::PolicyPublishedV1(PolicyPublished {
        region,
        coverage_year,
        source: String::new(),
        document: String::new(),
    })
    .stream();
    let mut latest = log.read_stream_blocking(&stream)?.into_iter().filter_map(|envelope| {
        let document = match &envelope.event {
            Event::PolicyPublishedV1(e) => e.document.clone(),
            Event::PolicyAmendedV1(e) => e.document.clone(),
            _ => return None,
        };
        Some((envelope.head.position, document))
    });
    let source = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let event = match latest.next_back() {
        None => Event::PolicyPublishedV1(PolicyPublished { region, coverage_year, source, document }),
        Some((position, recorded)) => {
            let same = Policy::from_toml(&recorded).is_ok_and(|r| r.content_digest() == policy.content_digest());
            if same {
                return Ok((policy, Loaded::Unchanged { position }));
            }
            let reason = reason.unwrap_or_else(|| format!("{source} differs from the document at position {position}"));
            Event::PolicyAmendedV1(PolicyAmended { region, coverage_year, source, document, reason })
        }
    };
    let amended = matches!(event, Event::PolicyAmendedV1(_));
    let new = crate::single::admit_without_channels(event, &format!("policy:{}", file.display()), POLICY_FLAGS)?;
    let outcome = log.append_blocking(vec![new]).context("appending the policy")?;
    let position = outcome.positions.first().copied().unwrap_or(0);
    Ok((policy, if amended { Loaded::Amended { position } } else { Loaded::Published { position } }))
}
