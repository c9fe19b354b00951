//! The channels a payment comes through (缴费渠道): a built-in set, and
//! those an office adds in `DIR/channels.toml`:
//!
//! ```toml
//! extra = ["rcc_bank", "jiangsu_bank"]
//! ```
//!
//! Channel names are stored lower-case (`ledger::text::channel`), so
//! `WeChat` and `wechat` are one channel; a name the set does not hold is
//! refused, listing the known ones, so a typo never starts a new channel.

use ledger::event::FieldError;
use ledger::Event;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// Channels a payment comes through, built in.
pub const BUILT_IN: &[&str] = &[
    "alipay",
    "bank",
    "bank_of_guizhou",
    "guizhou_rural_credit",
    "guizhou_yibao_app",
    "tax",
    "tax_hall",
    "unionpay",
    "village_collector",
    "wanshitong",
    "wechat",
];

/// What a refund may name as the payment it returns besides a channel: a
/// proxy payment (`proxy`, or the personal account it came from) by its
/// application id, or the year's subsidies (`subsidy`) by group. Never the
/// channel of a `payment_received`.
pub const REFUND_SOURCES: &[&str] = &["employee_personal_account", "proxy", "subsidy"];

/// The file in the data directory that adds channels.
pub const FILE_NAME: &str = "channels.toml";

/// Most channels a file may add.
const MAX_EXTRA: usize = 256;

/// The channels one ledger accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channels {
    payment: BTreeSet<String>,
}

/// A `channels.toml` that cannot be used.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ChannelsError {
    pub path: PathBuf,
    pub reason: String,
}

impl crate::error::Classified for ChannelsError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::BadInput
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsFile {
    #[serde(default)]
    extra: Vec<String>,
}

static BUILT_IN_SET: LazyLock<Channels> =
    LazyLock::new(|| Channels { payment: BUILT_IN.iter().map(|name| name.to_string()).collect() });

impl Channels {
    /// The built-in set alone.
    pub fn built_in() -> &'static Channels {
        &BUILT_IN_SET
    }

    /// The built-in set plus `DIR/channels.toml`'s `extra`, if the file exists.
    pub fn load(data: &Path) -> Result<Channels, ChannelsError> {
        let path = data.join(FILE_NAME);
        let error = |reason: String| ChannelsError { path: path.clone(), reason };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Channels::built_in().clone()),
            Err(e) => return Err(error(format!("cannot read: {e}"))),
        };
        let file: ChannelsFile = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        if file.extra.len() > MAX_EXTRA {
            return Err(error(format!("`extra` lists {} channels; at most {MAX_EXTRA}", file.extra.len())));
        }
        let mut channels = Channels::built_in().clone();
        for (index, name) in file.extra.iter().enumerate() {
            let canonical = ledger::text::channel("extra", name)
                .map_err(|e| error(format!("field `extra[{index}]`: {}", e.reason)))?;
            if REFUND_SOURCES.contains(&canonical.as_str()) {
                return Err(error(format!("field `extra[{index}]`: `{canonical}` is reserved for refunds")));
            }
            channels.payment.insert(canonical);
        }
        Ok(channels)
    }

    /// Whether a payment may come through `channel` (canonical form).
    pub fn knows(&self, channel: &str) -> bool {
        self.payment.contains(channel)
    }

    /// A payment channel as someone typed it (`--channel WeChat`), in its
    /// canonical spelling, or why it is not one of the known channels.
    pub fn canonical(&self, field: &'static str, text: &str) -> Result<String, FieldError> {
        let channel = ledger::text::channel(field, text)?;
        if !self.knows(&channel) {
            return Err(FieldError { field, reason: self.unknown(&channel, false) });
        }
        Ok(channel)
    }

    /// Refuses a payment or refund whose (canonical) channel is not known.
    pub fn check(&self, event: &Event) -> Result<(), FieldError> {
        match event {
            Event::PaymentReceivedV1(e) if !self.knows(&e.channel) => {
                Err(FieldError { field: "channel", reason: self.unknown(&e.channel, false) })
            }
            Event::RefundIssuedV1(e)
                if !self.knows(&e.payment.channel) && !REFUND_SOURCES.contains(&e.payment.channel.as_str()) =>
            {
                Err(FieldError { field: "payment.channel", reason: self.unknown(&e.payment.channel, true) })
            }
            _ => Ok(()),
        }
    }

    fn unknown(&self, channel: &str, refund: bool) -> String {
        let known: Vec<&str> = self.payment.iter().map(String::as_str).collect();
        let mut reason = format!("unknown channel `{channel}`; known: {}", known.join(", "));
        if refund {
            reason.push_str(&format!(" (and for refunds: {})", REFUND_SOURCES.join(", ")));
        }
        reason.push_str(&format!("; to add one, list it in the data directory's {FILE_NAME}: extra = [\"{channel}\"]"));
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_channels_come_from_the_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(Channels::load(dir.path()).expect("no file"), *Channels::built_in());
        std::fs::write(dir.path().join(FILE_NAME), "extra = [\" RCC_Bank \"]\n").expect("write");
        let channels = Channels::load(dir.path()).expect("valid file");
        assert!(channels.knows("rcc_bank") && channels.knows("wechat"));
        std::fs::write(dir.path().join(FILE_NAME), "extra = [\"rcc bank\"]\n").expect("write");
        let error = Channels::load(dir.path()).expect_err("space inside");
        assert!(error.to_string().contains("extra[0]"), "{error}");
        std::fs::write(dir.path().join(FILE_NAME), "extras = []\n").expect("write");
        assert!(Channels::load(dir.path()).is_err(), "unknown key");
    }
}
