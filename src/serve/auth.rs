//! Bearer tokens and roles, from a TOML file:
//!
//! ```toml
//! [[token]]
//! name = "office-1"      # recorded in access.log (default: ROLE-N)
//! token = "..."
//! role = "office"        # office | channel | auditor
//!
//! [[token]]
//! name = "wechat-pay"
//! token = "..."
//! role = "channel"
//! channels = ["wechat"]  # the channels whose payments it delivers
//! ```
//!
//! The file holds secrets: it must be readable by its owner only. A token's
//! name is also its namespace for idempotency keys over HTTP
//! (`client/{name}/{key}`), so names are unique and hold no `/`.

use super::error::ApiError;
use crate::exit::BadInput;
use anyhow::Result;
use axum::http::HeaderMap;
use axum_extra::headers::authorization::{Authorization, Bearer};
use axum_extra::headers::HeaderMapExt;
use ledger::envelope::sm3;
use ledger::Event;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
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
    /// The payment channels a channel token delivers for; empty for the
    /// other roles, which name no channel of their own.
    pub channels: Vec<String>,
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

    /// A channel token posts for its own channels only: a payment (or any
    /// fact naming a channel) of another channel is refused.
    pub fn may_name_channel(&self, event: &Event, fact_number: usize) -> Result<(), ApiError> {
        let Some(channel) = channel_named(event) else { return Ok(()) };
        if self.role != Some(Role::Channel) || self.channels.iter().any(|own| own == channel) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "fact {fact_number}: the token `{}` delivers for {} only, not for channel `{channel}`",
            self.name,
            self.channels.join(", ")
        )))
    }

    /// A caller-given idempotency key as stored: in the caller's own
    /// namespace, so one caller cannot occupy another's key.
    pub fn namespaced_key(&self, key: &str) -> String {
        format!("{}{}/{key}", operations::facts::CALLER_KEY_PREFIX, self.name)
    }
}

/// The payment channel a fact names, if any.
fn channel_named(event: &Event) -> Option<&str> {
    match event {
        Event::PaymentReceivedV1(payment) => Some(&payment.channel),
        Event::RefundIssuedV1(refund) => Some(&refund.payment.channel),
        _ => None,
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
    channels: Option<Vec<String>>,
}

/// SM3 of the token text → caller. Tokens are found by their digest, so
/// the time a lookup takes depends on the digest of what was presented,
/// never on how many leading characters of a real token it shares.
pub struct Tokens(HashMap<ledger::Hash, Caller>);

impl Tokens {
    /// Reads the tokens file; any fault in it is bad input (exit 2).
    pub fn load(path: &Path) -> Result<Tokens> {
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("reading {}: {e}", path.display())))?;
        let file: TokenFile = toml::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        let mut tokens = HashMap::new();
        let mut names = HashSet::new();
        for (index, entry) in file.token.into_iter().enumerate() {
            let at = |message: String| BadInput(format!("{}: token {}: {message}", path.display(), index + 1));
            if entry.token.chars().count() < MIN_TOKEN_CHARS {
                return Err(at(format!("shorter than {MIN_TOKEN_CHARS} characters")).into());
            }
            let name = entry.name.unwrap_or_else(|| format!("{}-{}", entry.role.name(), index + 1));
            if name.is_empty() || name.contains('/') {
                return Err(at(format!("name `{name}`: empty or holding `/`")).into());
            }
            if !names.insert(name.clone()) {
                return Err(at(format!("name `{name}` appears twice (a name is an idempotency namespace)")).into());
            }
            let channels = channels_of(entry.role, entry.channels).map_err(at)?;
            let caller = Caller { name, role: Some(entry.role), channels };
            if tokens.insert(sm3(entry.token.as_bytes()), caller).is_some() {
                return Err(at("appears twice".into()).into());
            }
        }
        Ok(Tokens(tokens))
    }

    /// The caller named by the `Authorization: Bearer` header, parsed as
    /// axum-extra's `TypedHeader<Authorization<Bearer>>` does (the scheme
    /// in any case, RFC 7235). Read from the header map rather than as an
    /// extractor: the intake middleware asks before reading a body.
    pub fn caller(tokens: Option<&Tokens>, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(tokens) = tokens else {
            return Ok(Caller { name: "anonymous".into(), role: None, channels: Vec::new() });
        };
        let presented = headers.typed_get::<Authorization<Bearer>>().ok_or_else(ApiError::unauthorized)?;
        tokens.0.get(&sm3(presented.token().trim().as_bytes())).cloned().ok_or_else(ApiError::unauthorized)
    }
}

/// A channel token names the channels it delivers for, in the ledger's
/// spelling (`WeChat` is `wechat`, as in the facts it posts); no other role
/// does.
fn channels_of(role: Role, channels: Option<Vec<String>>) -> Result<Vec<String>, String> {
    match (role, channels) {
        (Role::Channel, Some(channels)) if !channels.is_empty() => channels
            .iter()
            .map(|channel| ledger::text::channel("channels", channel).map_err(|e| format!("channels: {}", e.reason)))
            .collect(),
        (Role::Channel, _) => Err("a channel token names its channels: channels = [\"wechat\"]".into()),
        (_, None) => Ok(Vec::new()),
        (role, Some(_)) => Err(format!("`channels` is for channel tokens, not {}", role.name())),
    }
}

/// The tokens file holds secrets: refused when group or others may read or
/// write it.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|e| BadInput(format!("reading {}: {e}", path.display())))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let shown = path.display();
        return Err(BadInput(format!(
            "{shown}: the tokens file is open to group or others (mode {mode:o}); run `chmod 600 {shown}`"
        ))
        .into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::AUTHORIZATION;
    use axum::http::HeaderValue;

    const TOKEN: &str = "office-token-0123456789";

    fn tokens() -> Tokens {
        let caller = Caller { name: "office-1".into(), role: Some(Role::Office), channels: Vec::new() };
        Tokens(HashMap::from([(sm3(TOKEN.as_bytes()), caller)]))
    }

    fn caller_for(authorization: Option<&str>) -> Result<Caller, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("a header value"));
        }
        Tokens::caller(Some(&tokens()), &headers)
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_anything_else_is_401() {
        for accepted in [format!("Bearer {TOKEN}"), format!("bearer {TOKEN}"), format!("BEARER  {TOKEN}")] {
            let caller = caller_for(Some(&accepted)).map_err(|e| e.status);
            assert_eq!(caller.map(|c| c.name), Ok("office-1".to_string()), "{accepted}");
        }
        let wrong = [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer wrong-token-0123456789"),
            Some("Basic b2ZmaWNlOnNlY3JldA=="),
            Some(TOKEN),
        ];
        for refused in wrong {
            let answer = caller_for(refused).map(|c| c.name).map_err(|e| e.status);
            assert_eq!(answer, Err(axum::http::StatusCode::UNAUTHORIZED), "{refused:?}");
        }
    }
}
