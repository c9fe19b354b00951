//! Loading a region-year policy document into the log: published when the
//! log has none for its region and year, amended when its content differs
//! from the latest, nothing when it is the same.

use crate::channels::Channels;
use crate::error::{Classified, Kind, StorageError};
use crate::facts;
use ledger::event::{FieldError, PolicyAmended, PolicyPublished};
use ledger::{Event, LogBackend, RegionCode};
use projections::policy::Policy;
use serde::Serialize;

/// What loading a document did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadOutcome {
    Published,
    Amended,
    /// The same content is already recorded: nothing appended.
    Unchanged,
}

/// The answer of a policy load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyLoaded {
    pub region: RegionCode,
    pub region_name: String,
    pub coverage_year: u16,
    pub outcome: LoadOutcome,
    /// Where the document now recorded is (appended now, or before).
    pub position: u64,
}

/// Loading a policy document failed; nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The document is not a valid policy.
    #[error("{source_name}: {message}")]
    Document { source_name: String, message: String },
    /// A field of the fact fails the edge's checks (the reason's length).
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    #[error("appending the policy")]
    Storage(#[from] StorageError),
}

impl Classified for PolicyError {
    fn kind(&self) -> Kind {
        match self {
            PolicyError::Document { .. } | PolicyError::Field(_) => Kind::BadInput,
            PolicyError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Field(error) => Some(error.field),
            _ => None,
        }
    }
}

/// A policy document to load: its text, the path it was read from (named
/// in errors and the actor) and the reason for an amendment.
pub struct PolicyDocument {
    pub path: String,
    pub text: String,
    pub reason: Option<String>,
}

/// Validates the document and appends it as published, amended, or not at
/// all when the log already holds the same content.
pub fn load(log: &(impl LogBackend + ?Sized), document: PolicyDocument) -> Result<PolicyLoaded, PolicyError> {
    let policy = Policy::from_toml(&document.text)
        .map_err(|e| PolicyError::Document { source_name: document.path.clone(), message: e.to_string() })?;
    let (region, coverage_year) = policy.key();
    let answer = |outcome, position| PolicyLoaded {
        region,
        region_name: policy.region_name().to_string(),
        coverage_year,
        outcome,
        position,
    };
    let source = file_name(&document.path);
    let event = match latest_document(log, region, coverage_year)? {
        None => Event::PolicyPublishedV1(PolicyPublished { region, coverage_year, source, document: document.text }),
        Some((position, recorded)) => {
            let same = Policy::from_toml(&recorded).is_ok_and(|r| r.content_digest() == policy.content_digest());
            if same {
                return Ok(answer(LoadOutcome::Unchanged, position));
            }
            let reason =
                document.reason.unwrap_or_else(|| format!("{source} differs from the document at position {position}"));
            let document = document.text;
            Event::PolicyAmendedV1(PolicyAmended { region, coverage_year, source, document, reason })
        }
    };
    let outcome =
        if matches!(event, Event::PolicyAmendedV1(_)) { LoadOutcome::Amended } else { LoadOutcome::Published };
    // A policy names no payment channel: the built-in channels will do.
    let actor = format!("policy:{}", document.path);
    let new = facts::admit(event, None, &actor, Channels::built_in()).map_err(PolicyError::Field)?;
    let appended = log.append_blocking(vec![new]).map_err(StorageError::from)?;
    Ok(answer(outcome, appended.positions.first().copied().unwrap_or(appended.head.position)))
}

/// The last document recorded for the region and year, and its position.
fn latest_document(
    log: &(impl LogBackend + ?Sized),
    region: RegionCode,
    coverage_year: u16,
) -> Result<Option<(u64, String)>, StorageError> {
    let stream = Event::PolicyPublishedV1(PolicyPublished {
        region,
        coverage_year,
        source: String::new(),
        document: String::new(),
    })
    .stream();
    let latest = log.read_stream_blocking(&stream)?.into_iter().rev().find_map(|envelope| match envelope.event {
        Event::PolicyPublishedV1(e) => Some((envelope.head.position, e.document)),
        Event::PolicyAmendedV1(e) => Some((envelope.head.position, e.document)),
        _ => None,
    });
    Ok(latest)
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
