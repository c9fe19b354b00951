//! `yibao proof`: the log's Merkle tree heads, inclusion and consistency
//! proofs (`operations::proof`), and the verification of a proof file
//! against a tree head, which opens no ledger.

use crate::exit::{classified, BadInput, Findings};
use anyhow::Result;
use clap::Subcommand;
use ledger::{merkle, OpenMode};
use operations::proof::{self, ConsistencyProof, InclusionProof, ProofError, TreeHead};
use operations::{Ledger, Location};
use serde::de::DeserializeOwned;
use std::path::Path;

/// A proof file is a few KiB: anything far larger is not one.
const MAX_PROOF_FILE_BYTES: u64 = 1 << 20;

/// `yibao proof …`; what a proof is for is said in the help of `proof`.
#[derive(Subcommand)]
pub enum ProofCommand {
    /// The tree head: the root of the tree over the first N records.
    Head {
        /// The tree's size (default: the log's head).
        #[arg(long)]
        tree_size: Option<u64>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove that the record at POS is in the tree of the head (or of
    /// --tree-size records). With --json, the proof file `verify` takes.
    Inclusion {
        /// The record's position (1 is the first).
        position: u64,
        /// The tree's size (default: the log's head).
        #[arg(long)]
        tree_size: Option<u64>,
        /// The proof as JSON: the file a verifier takes.
        #[arg(long)]
        json: bool,
    },
    /// Prove that the tree of NEW records (default: the head) extends the
    /// tree of OLD records. With --json, the proof file `verify` takes.
    Consistency {
        /// The earlier tree's size.
        old: u64,
        /// The later tree's size (default: the log's head).
        new: Option<u64>,
        /// The proof as JSON: the file a verifier takes.
        #[arg(long)]
        json: bool,
    },
    /// Check a proof file against a tree head you trust, without the
    /// ledger. Exit 0 verified; 1 not verified, naming what failed; 2 a
    /// file that is not a proof, naming the line or field.
    ///
    /// An inclusion proof must lead to --root at --tree-size; a
    /// consistency proof must name --root at its old or its new size.
    Verify {
        /// The proof (the JSON of `proof inclusion --json` or `proof
        /// consistency --json`).
        file: std::path::PathBuf,
        /// The trusted tree head's root, hex.
        #[arg(long)]
        root: String,
        /// The trusted tree head's size.
        #[arg(long)]
        tree_size: u64,
    },
}

pub fn run(location: &Location, command: ProofCommand) -> Result<()> {
    match command {
        ProofCommand::Head { tree_size, json } => {
            let head = proof::tree_head(&open(location)?, tree_size).map_err(classified)?;
            print_head(&head, json)
        }
        ProofCommand::Inclusion { position, tree_size, json } => {
            let proof = proof::inclusion(&open(location)?, position, tree_size).map_err(classified)?;
            print_inclusion(&proof, json)
        }
        ProofCommand::Consistency { old, new, json } => {
            let proof = proof::consistency(&open(location)?, old, new).map_err(classified)?;
            print_consistency(&proof, json)
        }
        ProofCommand::Verify { file, root, tree_size } => verify(&file, &root, tree_size),
    }
}

fn open(location: &Location) -> Result<Ledger> {
    Ledger::open(location, OpenMode::Read).map_err(classified)
}

fn print_head(head: &TreeHead, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(head)?);
    } else {
        outln!("tree size {}\nroot {}", head.tree_size, head.root);
    }
    Ok(())
}

fn print_inclusion(proof: &InclusionProof, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(proof)?);
        return Ok(());
    }
    outln!("position {} (chain hash {})", proof.position, proof.chain_hash);
    outln!("is in the tree of {} records whose root is {}", proof.tree_size, proof.root);
    outln!("audit path ({} hashes, nearest the record first):", proof.path.len());
    for hash in &proof.path {
        outln!("  {hash}");
    }
    Ok(())
}

fn print_consistency(proof: &ConsistencyProof, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(proof)?);
        return Ok(());
    }
    outln!("the tree of {} records (root {})", proof.new_size, proof.new_root);
    outln!("extends the tree of {} records (root {})", proof.old_size, proof.old_root);
    outln!("proof ({} hashes):", proof.path.len());
    for hash in &proof.path {
        outln!("  {hash}");
    }
    Ok(())
}

/// Checks the proof in `file` against the trusted head (`root`, `tree_size`).
fn verify(file: &Path, root: &str, tree_size: u64) -> Result<()> {
    let root = proof::parse_hash(root, "--root").map_err(|error| BadInput(error.to_string()))?;
    let root = hex::encode(root);
    let text = read_proof_file(file)?;
    let keys = object_keys(file, &text)?;
    if keys.iter().any(|key| key == "position") {
        let proof: InclusionProof = parse(file, &text)?;
        check_head(&[(proof.tree_size, &proof.root, "tree_size and root")], tree_size, &root)?;
        proof.verify().map_err(|error| verify_failed(file, &text, error))?;
        outln!(
            "verified: position {} (chain hash {}) is in the tree of {tree_size} records whose root is {root}",
            proof.position,
            proof.chain_hash
        );
    } else if keys.iter().any(|key| key == "old_size") {
        let proof: ConsistencyProof = parse(file, &text)?;
        let sides = [
            (proof.old_size, &proof.old_root, "old_size and old_root"),
            (proof.new_size, &proof.new_root, "new_size and new_root"),
        ];
        check_head(&sides, tree_size, &root)?;
        proof.verify().map_err(|error| verify_failed(file, &text, error))?;
        outln!(
            "verified: the tree of {} records (root {}) extends the tree of {} records (root {})",
            proof.new_size,
            proof.new_root,
            proof.old_size,
            proof.old_root
        );
    } else {
        return Err(BadInput(format!(
            "{}: not a proof: an inclusion proof has the field `position`, a consistency proof `old_size`",
            file.display()
        ))
        .into());
    }
    Ok(())
}

fn read_proof_file(file: &Path) -> Result<String> {
    let unreadable = |error: std::io::Error| BadInput(format!("cannot read {}: {error}", file.display()));
    let size = std::fs::metadata(file).map_err(unreadable)?.len();
    if size > MAX_PROOF_FILE_BYTES {
        return Err(BadInput(format!("{}: {size} bytes is too large for a proof file", file.display())).into());
    }
    let bytes = std::fs::read(file).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|_| BadInput(format!("{}: not UTF-8 text", file.display())).into())
}

/// The top-level keys of the JSON object in `text`.
fn object_keys(file: &Path, text: &str) -> Result<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| BadInput(format!("{}: line {}: not JSON: {error}", file.display(), error.line())))?;
    let serde_json::Value::Object(map) = value else {
        return Err(BadInput(format!("{}: line 1: a proof is a JSON object", file.display())).into());
    };
    Ok(map.keys().cloned().collect())
}

/// The proof in `text`, or an error naming the line and field at fault.
fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let line = error.inner().line();
        let field = error.path().to_string();
        let field = if field == "." { String::new() } else { format!(" field `{field}`:") };
        BadInput(format!("{}: line {line}:{field} {}", file.display(), error.inner())).into()
    })
}

/// The proof must be about the trusted head: one of `sides` (size, root)
/// at `tree_size` with that root.
fn check_head(sides: &[(u64, &String, &str)], tree_size: u64, root: &str) -> Result<()> {
    let Some((_, proof_root, fields)) = sides.iter().find(|(size, _, _)| *size == tree_size) else {
        let sizes: Vec<String> = sides.iter().map(|(size, _, _)| size.to_string()).collect();
        return Err(Findings(format!(
            "not verified: the proof is about the tree of {} records, not of {tree_size} (the given tree head)",
            sizes.join(" and ")
        ))
        .into());
    };
    if !proof_root.eq_ignore_ascii_case(root) {
        return Err(Findings(format!(
            "not verified: the proof's {fields} name root {proof_root}, the given tree head of {tree_size} records has root {root}"
        ))
        .into());
    }
    Ok(())
}

/// A proof that did not verify (exit 1), or a field that is no hash
/// (exit 2, naming its line).
fn verify_failed(file: &Path, text: &str, error: ProofError) -> anyhow::Error {
    match error {
        ProofError::BadHash { field } => {
            let line = line_of_field(text, &field);
            BadInput(format!(
                "{}: line {line}: field `{field}` is not an SM3 hash in hex (64 hex digits)",
                file.display()
            ))
            .into()
        }
        ProofError::Invalid(reason @ merkle::ProofError::RootMismatch) => Findings(format!(
            "not verified: {}: {reason}: its chain_hash or a hash of its path is not the ledger's",
            file.display()
        ))
        .into(),
        ProofError::Invalid(reason) => Findings(format!("not verified: {}: {reason}", file.display())).into(),
        other => anyhow::Error::new(other).context(format!("verifying {}", file.display())),
    }
}

/// The line of `field` (`root`, `path[3]`) in a proof file: the line of
/// its key, or for the n-th entry of `path` the n-th string after it.
fn line_of_field(text: &str, field: &str) -> usize {
    let (key, entry) = match field.split_once('[') {
        Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (field, None),
    };
    let Some(key_at) = text.find(&format!("\"{key}\"")) else { return 1 };
    let mut at = key_at + key.len() + 2;
    if let Some(entry) = entry {
        // Skip to the opening quote of the entry's string.
        for _ in 0..=entry {
            match text[at..].find('"') {
                Some(quote) => at += quote + 1,
                None => break,
            }
            if let Some(close) = text[at..].find('"') {
                at += close + 1;
            }
        }
    }
    1 + text[..at.min(text.len())].matches('\n').count()
}
