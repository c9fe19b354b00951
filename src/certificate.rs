//! `yibao certificate`: the payment certificate (参保缴费证明) of a received
//! person-year, and its verification against the log. The operations are
//! `operations::certificate::{issue, verify}`; this is their command line:
//! flags, the output file, the report, exit codes.

use crate::exit::{classified, BadInput};
use crate::lookup::parse_identity;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ledger::OpenMode;
use operations::certificate::{self, Format, Verified, VerifyError, MAX_DOCUMENT_BYTES};
use operations::keys;
use operations::Ledger;
use operations::Location;
use std::path::{Path, PathBuf};

/// `yibao certificate ID --year Y` or `yibao certificate verify FILE`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: Option<CertificateCommand>,
    /// ID number of the insured person.
    id: Option<String>,
    /// Coverage year.
    #[arg(long)]
    year: Option<u16>,
    /// text, html, or json (the data block alone).
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Print the whole ID number (default: masked, as `Identity::masked`).
    #[arg(long)]
    full_id: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CertificateCommand {
    /// Check a certificate against the log: every field and printed line
    /// against the certificate the log gives at the head at issue. Exit 1
    /// naming each failing field; exit 4 when genuine but the person-year
    /// changed since issue.
    ///
    /// With --public-key: checked without the ledger (no data directory
    /// opened): the signed tree head, the office's signature over every
    /// field, each fact's record and its inclusion proof. Exit 1 naming
    /// each failing check, or a certificate issued without a signing key.
    Verify {
        /// The certificate (text, HTML or JSON).
        file: PathBuf,
        /// The office's public key (PEM, `yibao keys show`).
        #[arg(long, value_name = "KEY")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Text,
    Html,
    Json,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Text => Format::Text,
            FormatArg::Html => Format::Html,
            FormatArg::Json => Format::Json,
        }
    }
}

/// Issues the certificate of `id`'s `year` as text into `out`.
pub fn issue_to(location: &Location, id: &str, year: u16, out: &Path) -> Result<()> {
    let identity = parse_identity(id)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let issued = certificate::issue(&ledger, &identity, year, false).map_err(classified)?;
    std::fs::write(out, certificate::render(&issued, Format::Text))
        .with_context(|| format!("writing {}", out.display()))?;
    outln!("certificate for {} {year} written to {}", issued.person, out.display());
    Ok(())
}

pub fn run(location: &Location, args: CertificateArgs) -> Result<()> {
    match args.command {
        Some(CertificateCommand::Verify { file, public_key: Some(key) }) => return verify_offline(&file, &key),
        Some(CertificateCommand::Verify { file, public_key: None }) => return verify(location, &file),
        None => {}
    }
    let (Some(id), Some(year)) = (args.id, args.year) else {
        return Err(BadInput("give an ID number and --year (or `certificate verify FILE`)".into()).into());
    };
    let identity = parse_identity(&id)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let issued = certificate::issue(&ledger, &identity, year, args.full_id).map_err(classified)?;
    let text = certificate::render(&issued, args.format.into());
    match args.out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            outln!("certificate for {} {year} written to {}", issued.person, path.display());
        }
        None => out!("{text}"),
    }
    Ok(())
}

/// `yibao certificate verify FILE`: the report on standard output (each
/// failure, or OK and whether the person-year changed since issue), the
/// verdict in the exit code.
fn verify(location: &Location, file: &Path) -> Result<()> {
    let label = file.display().to_string();
    let text = read(file)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let error = match certificate::verify(&ledger, &text) {
        Ok(verified) => {
            print_verified(&label, &verified);
            outln!("still current: the log states {} {} as certified", verified.person, verified.coverage_year);
            return Ok(());
        }
        Err(error) => error,
    };
    match &error {
        VerifyError::DataBlock { field, reason } => outln!("FAILED: {label}: data block, field `{field}`: {reason}"),
        VerifyError::Forged { failures } => {
            for failure in failures {
                outln!("FAILED: {failure}");
            }
        }
        VerifyError::Changed(changed) => {
            print_verified(&label, &changed.verified);
            outln!("CHANGED SINCE ISSUE: {} {}:", changed.verified.person, changed.verified.coverage_year);
            for change in &changed.changes {
                outln!("  {change}");
            }
        }
        _ => {}
    }
    Err(classified(error)).context(label)
}

/// `yibao certificate verify FILE --public-key KEY`: no ledger opened.
/// `yibao certificate verify FILE --public-key KEY`: no ledger opened.
pub fn verify_offline(file: &Path, public_key: &Path) -> Result<()> {
    let label = file.display().to_string();
    let text = read(file)?;
    let key = keys::read_public(public_key).map_err(classified)?;
    let error = match certificate::verify_offline(&text, &key) {
        Ok(verified) => {
            outln!(
                "OK: {label}: {} {} received; signed by key {}; {} money fact(s) proven in the Merkle tree of \
                 ledger {} at size {} (root {}, signed {}); every field signed by the office",
                verified.person,
                verified.coverage_year,
                verified.key_id,
                verified.n_payments,
                verified.ledger_id,
                verified.tree_size,
                verified.root,
                verified.signed_at
            );
            return Ok(());
        }
        Err(error) => error,
    };
    match &error {
        VerifyError::DataBlock { field, reason } => outln!("FAILED: {label}: data block, field `{field}`: {reason}"),
        VerifyError::Unproven { failures } => {
            for failure in failures {
                outln!("FAILED: {failure}");
            }
        }
        VerifyError::NoProofs => outln!("FAILED: {label}: {error}"),
        _ => {}
    }
    Err(classified(error)).context(label)
}

fn print_verified(label: &str, verified: &Verified) {
    outln!(
        "OK: {label}: {} {} received; {} money fact(s) found at their positions with their SM3 hashes; every \
         field agrees with the log at the head at issue, position {} (head now {})",
        verified.person,
        verified.coverage_year,
        verified.n_payments,
        verified.head_position,
        verified.head_now
    );
}

/// The certificate file, refused (exit 2) when unreadable or larger than
/// any certificate.
fn read(file: &Path) -> Result<String> {
    let cannot = |e: std::io::Error| BadInput(format!("cannot read {}: {e}", file.display()));
    let size = std::fs::metadata(file).map_err(cannot)?.len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(BadInput(format!("{}: {size} bytes, larger than any certificate", file.display())).into());
    }
    Ok(std::fs::read_to_string(file).map_err(cannot)?)
}
