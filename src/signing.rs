//! `yibao keys …` (the office's SM2 key pair) and `yibao checkpoint …`
//! (signed tree heads: sign, verify offline or against an earlier head,
//! check against the log). The operations are `operations::keys` and
//! `operations::signed_head`; this is their command line.

use crate::exit::{classified, BadInput};
use anyhow::{Context, Result};
use clap::Subcommand;
use ledger::OpenMode;
use operations::keys::{self, PublicKeyInfo};
use operations::proof::ConsistencyProof;
use operations::signed_head::{self, ProofSource, SignedHead, MAX_HEAD_BYTES};
use operations::{Ledger, Location};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make the office's SM2 signing key: the private key in
    /// DIR/keys/signing.key (mode 0600; an existing key is never
    /// replaced, exit 2), the public key in DIR/keys/signing.pub (PEM) to
    /// publish, printed with its key id.
    Init,
    /// Print the public key (PEM) and its key id.
    Show,
}

#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// Sign the log's tree head (size, Merkle root) with the office's key:
    /// a small text file to publish.
    Sign {
        /// Write the signed head here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The tree size to sign (default: the log's head).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Check a signed head without the ledger: its signature by the public
    /// key; with --previous, that it extends an earlier head (a
    /// consistency proof from --proof, else from the ledger in --data).
    /// Exit 1 naming the check that failed, 2 a bad file.
    Verify {
        /// The signed head.
        file: PathBuf,
        /// The office's public key (PEM), as `yibao keys show` prints it.
        #[arg(long, value_name = "KEY")]
        public_key: PathBuf,
        /// An earlier signed head the new one must extend.
        #[arg(long, value_name = "OLDFILE")]
        previous: Option<PathBuf>,
        /// The consistency proof from --previous to FILE (JSON, as `yibao
        /// proof consistency --json` writes it); without it the ledger
        /// makes one.
        #[arg(long, requires = "previous")]
        proof: Option<PathBuf>,
    },
    /// Check a signed head against the log: its signature, and the log's
    /// Merkle root at the head's size (a rewritten history fails, exit 1).
    Check {
        file: PathBuf,
        #[arg(long, value_name = "KEY")]
        public_key: PathBuf,
    },
}

pub fn keys(location: &Location, command: KeysCommand) -> Result<()> {
    let public = match command {
        KeysCommand::Init => {
            let public = keys::init(location.data()).map_err(classified)?;
            outln!("signing key written to {} (mode 0600)", keys::private_key_path(location.data()).display());
            outln!("public key written to {}", keys::public_key_path(location.data()).display());
            public
        }
        KeysCommand::Show => keys::require(location.data()).and_then(|key| key.public()).map_err(classified)?,
    };
    outln!("key id {} (SM2, distinguishing ID {})", public.key_id, keys::DISTINGUISHING_ID);
    out!("{}", public.pem);
    Ok(())
}

pub fn checkpoint(location: &Location, command: CheckpointCommand) -> Result<()> {
    match command {
        CheckpointCommand::Sign { out, size } => sign(location, out.as_deref(), size),
        CheckpointCommand::Verify { file, public_key, previous, proof } => {
            verify(location, &file, &public_key, previous.as_deref(), proof.as_deref())
        }
        CheckpointCommand::Check { file, public_key } => check(location, &file, &public_key),
    }
}

fn sign(location: &Location, out: Option<&Path>, size: Option<u64>) -> Result<()> {
    let key = keys::require(location.data()).map_err(classified)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let head = signed_head::sign(&ledger, &key, size).map_err(classified)?;
    let text = head.render();
    match out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            outln!(
                "signed tree head of ledger {} at size {} written to {}: root {}",
                head.ledger_id,
                head.tree_size,
                path.display(),
                head.root
            );
        }
        None => out!("{text}"),
    }
    Ok(())
}

fn verify(
    location: &Location,
    file: &Path,
    public_key: &Path,
    previous: Option<&Path>,
    proof: Option<&Path>,
) -> Result<()> {
    let key = keys::read_public(public_key).map_err(classified)?;
    let head = read_head(file)?;
    signature_ok(&head, &key, file)?;
    let Some(previous) = previous else { return Ok(()) };
    let old = read_head(previous)?;
    signature_ok(&old, &key, previous)?;
    let source = match proof {
        Some(path) => ProofSource::Given(read_proof(path)?),
        None => {
            let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
            return extends(&old, &head, ProofSource::Ledger(&ledger), previous, file);
        }
    };
    extends(&old, &head, source, previous, file)
}

fn extends(old: &SignedHead, new: &SignedHead, source: ProofSource<'_>, old_file: &Path, file: &Path) -> Result<()> {
    signed_head::check_extension(old, new, source)
        .map_err(classified)
        .with_context(|| format!("{} after {}", file.display(), old_file.display()))?;
    outln!(
        "OK: {} extends {}: consistency proof from size {} to size {} verifies",
        file.display(),
        old_file.display(),
        old.tree_size,
        new.tree_size
    );
    Ok(())
}

/// A signed head checked by its signature, then against the log.
pub fn check(location: &Location, file: &Path, public_key: &Path) -> Result<()> {
    let key = keys::read_public(public_key).map_err(classified)?;
    let head = read_head(file)?;
    signature_ok(&head, &key, file)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    signed_head::check_against_log(&ledger, &head).map_err(classified).with_context(|| file.display().to_string())?;
    outln!("OK: {}: the log's Merkle root at size {} is the signed root {}", file.display(), head.tree_size, head.root);
    Ok(())
}

fn signature_ok(head: &SignedHead, key: &PublicKeyInfo, file: &Path) -> Result<()> {
    head.check_signature(key).map_err(classified).with_context(|| file.display().to_string())?;
    outln!(
        "OK: {}: signed by key {} at {}; ledger {}, tree size {}, root {}",
        file.display(),
        key.key_id,
        head.signed_at,
        head.ledger_id,
        head.tree_size,
        head.root
    );
    Ok(())
}

/// A signed head file; exit 2 naming the file, line and field.
pub fn read_head(file: &Path) -> Result<SignedHead> {
    let text = read_small(file, MAX_HEAD_BYTES as u64)?;
    SignedHead::parse(&text).map_err(classified).with_context(|| file.display().to_string())
}

fn read_proof(file: &Path) -> Result<ConsistencyProof> {
    let text = read_small(file, 1 << 20)?;
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
        .map_err(|e| BadInput(format!("{}: field `{}`: {}", file.display(), e.path(), e.inner())).into())
}

fn read_small(file: &Path, limit: u64) -> Result<String> {
    let cannot = |e: std::io::Error| BadInput(format!("cannot read {}: {e}", file.display()));
    let size = std::fs::metadata(file).map_err(cannot)?.len();
    if size > limit {
        return Err(BadInput(format!("{}: {size} bytes, larger than expected ({limit})", file.display())).into());
    }
    Ok(std::fs::read_to_string(file).map_err(cannot)?)
}
