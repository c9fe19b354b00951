//! `yibao policy load`: a region-year policy document into the log, an
//! adapter over `operations::policy`.

use crate::exit::{classified, BadInput};
use anyhow::Result;
use ledger::{LogBackend, OpenMode};
use operations::policy::{LoadOutcome, PolicyDocument, PolicyError, PolicyLoaded};
use operations::Location;
use std::path::Path;

pub fn load(location: &Location, file: &Path, reason: Option<String>) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    let log = crate::commands::open(location, OpenMode::Existing)?;
    let loaded = load_document(&*log, file, text, reason)?;
    report(file, &loaded);
    Ok(())
}

/// A document already read (`file` names it) into `log`.
pub fn load_document(
    log: &(impl LogBackend + ?Sized),
    file: &Path,
    text: String,
    reason: Option<String>,
) -> Result<PolicyLoaded> {
    let document = PolicyDocument { path: file.display().to_string(), text, reason };
    operations::policy::load(log, document).map_err(|error| match error {
        PolicyError::Field(field) => crate::single::field_error(POLICY_FLAGS, field.field, field.reason),
        other => classified(other),
    })
}

pub fn report(file: &Path, loaded: &PolicyLoaded) {
    let what = format!("{} {} {}", loaded.region_name, loaded.region, loaded.coverage_year);
    let position = loaded.position;
    match loaded.outcome {
        LoadOutcome::Published => outln!("{}: published policy {what} at position {position}", file.display()),
        LoadOutcome::Amended => outln!("{}: amended policy {what} at position {position}", file.display()),
        LoadOutcome::Unchanged => {
            outln!("{}: policy {what} is already recorded at position {position}; nothing appended", file.display())
        }
    }
}

const POLICY_FLAGS: crate::single::FlagNames = &[("reason", "--reason")];
