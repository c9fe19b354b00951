//! Bearer tokens and roles, from a TOML file:
//!
//! ```toml
//! [[token]]
//! name = "office-1"      # recorded in access.log (default: ROLE-N)
//! token = "..."
//! role = "office"        # office | channel | auditor
//! ```

use super::error::ApiError;
use anyhow::{bail, Context, Result};
use axum::http::{header, HeaderMap};
use ledger::envelope::sm3;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Shortest token accepted: a guessable token is no access control.
const MIN_TOKEN_CHARS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The insurance office: reads; posts registrations, assessments,
    /// bindings, policies, refunds, everything but channel facts.
    Office,
    /// A payment channel: posts payments and proxy steps only.
    Channel,
    /// Reads; verifies the chain and replays years (audit jobs).
    Auditor,
}

impl Role {
    /// As written in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Office => "office",
            Role::Channel => "channel",
            Role::Auditor => "auditor",
        }
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    /// `None`: `--insecure-no-auth`, every right.
    pub role: Option<Role>,
}

/// The fact types a payment channel delivers.
const CHANNEL_TYPES: &[&str] =
    &["payment_received", "proxy_submitted", "proxy_processing", "proxy_credited", "proxy_failed", "proxy_returned"];

impl Caller {
    pub fn may_read(&self) -> Result<(), ApiError> {
        match self.role {
            None | Some(Role::Office) | Some(Role::Auditor) => Ok(()),
            Some(Role::Channel) => Err(ApiError::forbidden("a channel token cannot read coverage")),
        }
    }

    /// Verifying the chain and replaying years: auditors.
    pub fn may_audit(&self) -> Result<(), ApiError> {
        match self.role {
            None | Some(Role::Auditor) => Ok(()),
            Some(role) => Err(ApiError::forbidden(format!("the {} role cannot run audit jobs", role.name()))),
        }
    }

    pub fn may_post(&self, type_name: &str) -> Result<(), ApiError> {
        let channel_fact = CHANNEL_TYPES.contains(&type_name);
        match self.role {
            None => Ok(()),
            Some(Role::Office) if !channel_fact => Ok(()),
            Some(Role::Channel) if channel_fact => Ok(()),
            Some(role) => Err(ApiError::forbidden(format!("the {} role cannot post `{type_name}` facts", role.name()))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: Option<String>,
    token: String,
    role: Role,
}

/// SM3 of the token text → caller. Tokens are found by their digest, so
/// the time a lookup takes depends on the digest of what was presented,
/// never on how many leading characters of a real token it shares.
pub struct Tokens(HashMap<ledger::Hash, Caller>);

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: TokenFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let mut tokens = HashMap::new();
        for (index, entry) in file.token.into_iter().enumerate() {
            if entry.token.chars().count() < MIN_TOKEN_CHARS {
                bail!("{}: token {}: shorter than {MIN_TOKEN_CHARS} characters", path.display(), index + 1);
            }
            let name = entry.name.unwrap_or_else(|| format!("{}-{}", entry.role.name(), index + 1));
            if tokens.insert(sm3(entry.token.as_bytes()), Caller { name, role: Some(entry.role) }).is_some() {
                bail!("{}: token {} appears twice", path.display(), index + 1);
            }
        }
        Ok(Tokens(tokens))
    }

    /// The caller named by the `Authorization: Bearer` header.
    pub fn caller(tokens: Option<&Tokens>, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(tokens) = tokens else { return Ok(Caller { name: "anonymous".into(), role: None }) };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        tokens.0.get(&sm3(presented.trim().as_bytes())).cloned().ok_or_else(ApiError::unauthorized)
    }
}
