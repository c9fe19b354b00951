//! The access log (who looked up whom): JSON Lines appended to
//! `DIR/access.log` by a writer thread fed through a bounded channel, so
//! a lookup never waits on the disk. Every line is written: a lookup waits
//! for room only when the writer is `QUEUE_CAPACITY` lines behind.
//!
//! The request path only moves what it has into the line; the writer masks
//! the ID and formats the time (once per second), and it sleeps between
//! batches, so that a busy server wakes it a few hundred times a second
//! rather than once per lookup.
//!
//! Which person was looked up is kept without the ID in clear: beside the
//! masked ID (which many persons share) each line carries `person_key`,
//! HMAC-SM3 of the ID under a secret made once per ledger from the
//! operating system's random source (`DIR/access.key`, readable by its
//! owner only), written `hmac-sm3:` and 128 bits in hex. `yibao access ID`
//! computes the same digest and lists that person's lookups; without the
//! key the digests cannot be tried against the ID space. Lines written
//! before the marker hold the older keyed digest, SM3(key ++ ID), and are
//! still matched with it (`PersonKeys`).

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use ledger::{BeijingTime, Identity};
use serde::Serialize;
use sm3::Sm3;
use std::io::Write;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// Lookups queued before a lookup waits for the writer.
const QUEUE_CAPACITY: usize = 16_384;
/// Pause after each batch: lines gather meanwhile (at most this late on disk).
const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// One lookup, as the handler knows it.
pub struct AccessLine {
    pub who: String,
    pub when: BeijingTime,
    /// The ID looked up; only its masked form is written.
    pub person: Identity,
    pub route: &'static str,
}

/// A line of the file.
#[derive(Serialize)]
struct Written<'a> {
    who: &'a str,
    when: &'a str,
    person: &'a str,
    person_key: &'a str,
    route: &'static str,
}

/// A line as read back by `yibao access`.
#[derive(serde::Deserialize)]
pub struct Recorded {
    pub who: String,
    pub when: String,
    #[serde(default)]
    pub person_key: String,
    pub route: String,
}

/// Bytes of the secret behind `person_key`.
const KEY_BYTES: usize = 32;

/// The ledger's access-log secret: read from `DIR/access.key`, or made
/// (random, owner-only) when there is none.
pub fn key(data: &Path) -> Result<[u8; KEY_BYTES]> {
    match existing_key(data)? {
        Some(key) => Ok(key),
        None => new_key(&data.join("access.key")),
    }
}

/// The secret, if the service has made one.
pub fn existing_key(data: &Path) -> Result<Option<[u8; KEY_BYTES]>> {
    let path = data.join("access.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == KEY_BYTES);
            let bytes = bytes.with_context(|| format!("{}: not {KEY_BYTES} hex bytes", path.display()))?;
            let mut key = [0u8; KEY_BYTES];
            key.copy_from_slice(&bytes);
            Ok(Some(key))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// A random secret, written owner-only; never replaces one.
fn new_key(path: &Path) -> Result<[u8; KEY_BYTES]> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("making {}: no random bytes: {e}", path.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(hex::encode(key).as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

/// Marks a `person_key` computed as HMAC-SM3; a key without it is the
/// older SM3(key ++ ID).
const HMAC_SM3_MARKER: &str = "hmac-sm3:";
/// Bytes of a digest kept in a line: 128 bits tell persons apart.
const DIGEST_BYTES: usize = 16;

/// The keyed digest that stands for `person` in the log: HMAC-SM3 of the
/// ID, the first 128 bits in hex after [`HMAC_SM3_MARKER`].
pub fn person_key(key: &[u8; KEY_BYTES], person: &Identity) -> String {
    let mut mac = <Hmac<Sm3> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(person.to_string().as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{HMAC_SM3_MARKER}{}", hex::encode(&digest[..DIGEST_BYTES]))
}

/// The digest lines written before HMAC-SM3 hold: SM3(key ++ ID), 128 bits
/// in hex, no marker. Read only, so older access logs still answer.
fn legacy_person_key(key: &[u8; KEY_BYTES], person: &Identity) -> String {
    let mut bytes = Vec::with_capacity(KEY_BYTES + 32);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(person.to_string().as_bytes());
    hex::encode(&ledger::envelope::sm3(&bytes)[..DIGEST_BYTES])
}

/// Both digests of one person, to match lines of either format.
pub struct PersonKeys {
    current: String,
    legacy: String,
}

impl PersonKeys {
    pub fn of(key: &[u8; KEY_BYTES], person: &Identity) -> PersonKeys {
        PersonKeys { current: person_key(key, person), legacy: legacy_person_key(key, person) }
    }

    /// Whether a line's `person_key` stands for this person, in the format
    /// the line was written in.
    pub fn matches(&self, recorded: &str) -> bool {
        if recorded.starts_with(HMAC_SM3_MARKER) {
            recorded == self.current
        } else {
            recorded == self.legacy
        }
    }
}

/// Opens the log for appending and starts its writer; the writer stops
/// once every sender is dropped, after writing what was queued.
pub fn start(data: &Path) -> Result<(mpsc::Sender<AccessLine>, JoinHandle<()>)> {
    let key = key(data)?;
    let path = data.join("access.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let (sender, mut receiver) = mpsc::channel::<AccessLine>(QUEUE_CAPACITY);
    let writer = std::thread::Builder::new()
        .name("yibao-access".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            let mut clock = Clock::default();
            while let Some(first) = receiver.blocking_recv() {
                let mut next = Some(first);
                let mut written = Ok(());
                while let Some(line) = next {
                    if written.is_ok() {
                        written = write_line(&mut out, &mut clock, &key, &line);
                    }
                    next = receiver.try_recv().ok();
                }
                if let Err(error) = written.and_then(|()| out.flush()) {
                    eprintln!("error: writing {}: {error}", path.display());
                }
                std::thread::sleep(BATCH_PAUSE);
            }
        })
        .context("starting the access log writer")?;
    Ok((sender, writer))
}

fn write_line(
    out: &mut impl Write,
    clock: &mut Clock,
    key: &[u8; KEY_BYTES],
    line: &AccessLine,
) -> std::io::Result<()> {
    let written = Written {
        who: &line.who,
        when: clock.format(line.when),
        person: &line.person.masked(),
        person_key: &person_key(key, &line.person),
        route: line.route,
    };
    serde_json::to_writer(&mut *out, &written)?;
    out.write_all(b"\n")
}

/// The time as text, formatted once per second (the log's resolution).
#[derive(Default)]
struct Clock {
    second: Option<i64>,
    text: String,
}

impl Clock {
    fn format(&mut self, when: BeijingTime) -> &str {
        let second = when.0.div_euclid(1_000_000);
        if self.second != Some(second) {
            self.second = Some(second);
            self.text = BeijingTime(second * 1_000_000).to_string();
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_written_masked_with_its_second() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (sender, writer) = start(dir.path()).expect("started");
        let person: Identity = "520201194001010006".parse().expect("an ID");
        let n_lines = QUEUE_CAPACITY + 100;
        for index in 0..n_lines {
            let when = BeijingTime(1_700_000_000_000_000 + index as i64 * 1_000);
            let line = AccessLine { who: "office-1".into(), when, person: person.clone(), route: "/v1/coverage" };
            sender.blocking_send(line).expect("sent");
        }
        drop(sender);
        writer.join().expect("the writer finished");
        let text = std::fs::read_to_string(dir.path().join("access.log")).expect("the log");
        assert_eq!(text.lines().count(), n_lines);
        let last: serde_json::Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
        assert_eq!(last["person"], person.masked());
        let key = key(dir.path()).expect("the key made at start");
        assert_eq!(last["person_key"], person_key(&key, &person));
        let other: Identity = "520201194001280006".parse().expect("an ID");
        assert_eq!(other.masked(), person.masked(), "two persons behind one mask");
        assert_ne!(person_key(&key, &other), person_key(&key, &person));
        assert_eq!(last["who"], "office-1");
        assert_eq!(last["when"], BeijingTime(1_700_000_016_000_000).to_string());
        assert!(!text.contains("520201194001010006"));
    }

    /// HMAC-SM3 as RFC 2104 defines it, written out over the `sm3` crate,
    /// against the `hmac` crate's; and the older digest still matched.
    #[test]
    fn person_key_is_hmac_sm3_and_older_lines_still_match() {
        let key = [7u8; KEY_BYTES];
        let person: Identity = "520201194001010006".parse().expect("an ID");
        let other: Identity = "520201194001280006".parse().expect("an ID");
        let block = |pad: u8| {
            let mut block = [pad; 64];
            block.iter_mut().zip(key).for_each(|(byte, k)| *byte ^= k);
            block
        };
        let inner = ledger::envelope::sm3(&[&block(0x36)[..], person.to_string().as_bytes()].concat());
        let outer = ledger::envelope::sm3(&[&block(0x5c)[..], &inner[..]].concat());
        let expected = format!("hmac-sm3:{}", hex::encode(&outer[..16]));
        assert_eq!(person_key(&key, &person), expected);

        let keys = PersonKeys::of(&key, &person);
        assert!(keys.matches(&expected));
        assert!(keys.matches(&legacy_person_key(&key, &person)), "an older line");
        assert!(!keys.matches(&person_key(&key, &other)));
        assert!(!keys.matches(&legacy_person_key(&key, &other)));
        let unmarked_hmac = expected.trim_start_matches(HMAC_SM3_MARKER);
        assert!(!keys.matches(unmarked_hmac), "a digest is read in the format its marker names");
    }
}
