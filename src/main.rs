//! `yibao`: the command line of the ledger. Thin: parsing arguments, reading
//! files and printing; the rules live in the crates.

#[macro_use]
mod output;

mod backup_cmd;
mod certificate;
mod commands;
mod demo;
mod exit;
mod family;
mod lookup;
mod policy;
mod private_files;
mod proof_cmd;
mod reconcile_cmd;
mod refund;
mod replay_cmd;
mod serve;
mod signing;
mod single;

/// Replay and import allocate many small strings; mimalloc frees them
/// without glibc's heap consolidation pauses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use ledger::{Date, RegionCode, UtcTime};
use std::path::PathBuf;
use std::process::ExitCode;

/// An event-sourced, hash-chained payment ledger for urban-rural resident
/// medical insurance (城乡居民医保).
///
/// Exit codes: 0 success (also when the reader of the output stops early,
/// `yibao log | head`; and when verify finds only an unfinished append that
/// was never acknowledged, which it names); 1 findings (verify found damage,
/// reconcile found breaks, replay --check found drift, no such person, a
/// certificate does not verify); 2 bad input, a refused fact or
/// usage (the message names the file, line and field; nothing was
/// appended); 3 the ledger failed (storage, a damaged store, a ledger in use
/// by another process); 4 a genuine certificate whose person-year changed
/// after issue.
#[derive(Parser)]
#[command(name = "yibao", version, about, long_about)]
struct Cli {
    /// Ledger data directory.
    #[arg(long, global = true, env = "YIBAO_DATA", default_value = "./yibao-data")]
    data: PathBuf,

    /// Where the log and the person store are: absent, the sled log in
    /// --data; postgres://USER@HOST:PORT/DATABASE (or postgresql://…), a
    /// PostgreSQL database that several `serve` replicas may share (the
    /// data directory still holds channels.toml, checkpoints and keys).
    #[arg(long, global = true, env = "YIBAO_STORE", value_name = "URL", hide_env_values = true)]
    store: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty ledger in the data directory (does nothing if one exists).
    Init,
    /// Append the facts of a JSON Lines file of any size.
    ///
    /// One fact per line: {"type": "payment_received", "v": 1, ...}. See
    /// README for every type. The whole file is checked first: a file with
    /// any bad line, or a key the ledger or the file holds with other
    /// content, or a fact the rules refuse, is refused whole, each error
    /// with its line and field. Then it is appended in chunks of
    /// --chunk-facts facts, each durable once acknowledged (a file of one
    /// chunk is one append, all or none). Facts already recorded (same
    /// idempotency key, same content) are not appended again, so after an
    /// interruption the same command appends the rest.
    Import {
        /// The JSON Lines file (`-` for standard input, kept in a temporary
        /// file while it is imported).
        file: PathBuf,
        /// The file is an `export --jsonl` of another ledger: rebuild that
        /// ledger exactly (same positions, hashes, head) into an empty one.
        #[arg(long)]
        restore: bool,
        /// Who delivers the facts, recorded in each envelope (default: import:FILE).
        #[arg(long)]
        actor: Option<String>,
        /// Facts per append: each chunk is recorded durably before the next.
        #[arg(long, default_value_t = operations::import::DEFAULT_CHUNK_FACTS as u64,
              value_parser = clap::value_parser!(u64).range(1..=ledger::log::MAX_EVENTS_PER_APPEND as u64))]
        chunk_facts: u64,
        /// The answer as one JSON object (no progress bars).
        #[arg(long)]
        json: bool,
    },
    /// Show recorded events.
    Log {
        /// First position to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many events to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line, with full envelopes.
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain and positions; name the first bad position.
    Verify {
        /// First position to check (the record before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position to check (default: the end).
        #[arg(long)]
        to: Option<u64>,
        /// Also check these signed tree heads (`yibao checkpoint sign`)
        /// against the log: each signature by `--public-key`, and the log's
        /// Merkle root at each head's size equal to its signed root (a
        /// history rewritten since it was signed fails, exit 1).
        #[arg(long = "signed-head", value_name = "FILE", requires = "public_key")]
        signed_heads: Vec<PathBuf>,
        /// The publisher's public key (`DIR/keys/signing.pub`) the signed
        /// heads are checked with.
        #[arg(long, value_name = "KEY")]
        public_key: Option<PathBuf>,
    },
    /// Read a damaged sled store's files without sled and write every
    /// record that checks (hash and position) in the export format,
    /// records after a gap included; prints the gaps and the first break.
    Salvage {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write every envelope, with its stored bytes and hashes (a whole copy;
    /// for backups run every minute, see `yibao backup`).
    Export {
        /// JSON Lines (the only format).
        #[arg(long, default_value_t = true)]
        jsonl: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add to DIR the records appended since the last backup there, as
    /// segment files (run it every minute; see README, "Backups").
    ///
    /// Exit 1 when the ledger no longer extends the backup (its history
    /// differs), 2 for a backup of another ledger; `--check` verifies every
    /// segment instead (exit 1 naming a damaged one).
    Backup {
        /// The backup directory (created on the first run).
        dir: PathBuf,
        /// Verify every segment (SM3 and chain); back nothing up.
        #[arg(long)]
        check: bool,
        /// Seal a segment once its records reach this many bytes.
        #[arg(long, default_value_t = operations::backup::DEFAULT_SEGMENT_BYTES as u64,
              value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
        segment_bytes: u64,
        /// The answer as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a ledger in the (empty) --data/--store from a backup
    /// directory, every segment checked first; exit 2 naming a damaged or
    /// missing segment, nothing restored.
    Restore {
        /// The backup directory.
        backup: PathBuf,
        /// After the backup, the records of this export-format file (an
        /// export, a salvage) that continue the chain, to its first gap or
        /// break; repeatable, in order.
        #[arg(long = "with", value_name = "FILE")]
        with: Vec<PathBuf>,
        /// Verify every segment; restore nothing.
        #[arg(long, conflicts_with = "with")]
        check: bool,
        /// The answer as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Register a person (参保登记) for resident insurance: one fact, checked
    /// as an import line is.
    Register {
        /// ID number: an 18-character resident ID, or `other:NUMBER`.
        #[arg(long)]
        id: String,
        /// Name as registered (姓名).
        #[arg(long)]
        name: String,
        /// Region code (GB/T 2260) where the person is insured, e.g. 520500.
        #[arg(long)]
        region: String,
        /// Birth date, YYYY-MM-DD (default: from the resident ID).
        #[arg(long)]
        birth_date: Option<String>,
        /// Registration day, YYYY-MM-DD (default: today in China).
        #[arg(long)]
        registered_on: Option<String>,
        /// standard | newborn | newborn_pre_registration |
        /// interrupted:LAST_PAID_YEAR | from_employee_insurance:LEFT_ON
        #[arg(long)]
        basis: Option<String>,
    },
    /// Record a premium payment (缴费) for a person and coverage year.
    Pay {
        /// ID number of the insured person.
        #[arg(long)]
        id: String,
        /// Coverage year the payment is for.
        #[arg(long)]
        year: u16,
        /// Amount in yuan, at most two decimals, e.g. 400.00.
        #[arg(long)]
        amount: String,
        /// Channel, any case: tax, wechat, alipay, bank, village_collector, ...
        /// or one listed in DIR/channels.toml (see README).
        #[arg(long)]
        channel: String,
        /// The channel's transaction reference (a repeat is recorded once).
        #[arg(long = "ref")]
        channel_ref: String,
        /// When it was paid: RFC 3339, or local China time (default: now).
        #[arg(long)]
        paid_at: Option<String>,
        /// ID number of the person who paid for the insured one (代他人缴费).
        #[arg(long)]
        paid_for_by: Option<String>,
        /// Name of the collector who took the money (代收代办).
        #[arg(long)]
        collector: Option<String>,
    },
    /// A person's coverage: state, covered days, due, paid by source.
    ///
    /// Exit 1 when the ledger has no such person, 2 for an invalid ID.
    Coverage {
        /// ID number: an 18-character resident ID, or `other:NUMBER`.
        id: String,
        /// One coverage year (default: every year recorded for the person).
        #[arg(long)]
        year: Option<u16>,
        /// Whether the person is covered on this day (YYYY-MM-DD); also the
        /// day a lapsing newborn pre-registration is judged on.
        #[arg(long)]
        on: Option<Date>,
        /// The full answer as JSON, with the log position it reflects.
        #[arg(long)]
        json: bool,
        /// Answer as the office would have at this moment (RFC 3339): only
        /// facts recorded by then count.
        #[arg(long)]
        as_of: Option<UtcTime>,
    },
    /// The auditor's replay of a coverage year: every projection rebuilt from
    /// the log alone into fresh state (the live one is not touched), the
    /// year's figures, and the state digest two auditors compare.
    ///
    /// Exit 1 with `--check` when the live projection differs.
    Replay {
        /// Coverage year of the report.
        #[arg(long)]
        year: u16,
        /// Limit the report to a region (county, prefecture or province code).
        #[arg(long)]
        region: Option<RegionCode>,
        /// Use only facts recorded up to this moment (transaction time,
        /// RFC 3339): what was known then.
        #[arg(long)]
        as_of: Option<UtcTime>,
        /// Count who is covered on this day (valid time), YYYY-MM-DD.
        #[arg(long)]
        on: Option<Date>,
        /// Compare the rebuild with the live checkpointed projection; list
        /// every person-year that differs.
        #[arg(long)]
        check: bool,
        /// The report as CSV (section,item,value).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every fact about a person, under every identity they had, in order.
    History {
        /// ID number (resident ID or `other:NUMBER`).
        id: String,
        /// Read every record of the log instead of the person's streams
        /// through the index: the auditor's cross-check (the same answer;
        /// its cost is the log's, not the person's).
        #[arg(long)]
        scan: bool,
    },
    /// Registered but not paid in full (the unpaid-reminder list), IDs masked.
    Unpaid {
        /// Region code: a county, a prefecture (all its counties) or a province.
        #[arg(long)]
        region: RegionCode,
        /// Coverage year.
        #[arg(long)]
        year: u16,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a hardship assessment (核定) from the policy in the log: the
    /// highest of the person's groups applies, never the sum.
    ///
    /// Refused (exit 2, nothing recorded) where the rules close the special
    /// path, e.g. Shanxi 2022 after a normal payment for the year.
    Assess {
        /// ID number of the person.
        #[arg(long)]
        id: String,
        /// Coverage year.
        #[arg(long)]
        year: u16,
        /// Hardship group id as in the policy (e.g. registered_poor); repeat
        /// for a person in several groups.
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Day of the assessment (default: today in China).
        #[arg(long)]
        on: Option<Date>,
    },
    /// Write a synthetic prefecture-year (六盘水 2021) as facts to import.
    ///
    /// The first line publishes the policy; then each person's facts: about
    /// 81 % pay in the concentrated period, 7 % later (full premium), 5 %
    /// never, 3 % hardship cases, 2 % paid from a relative's employee
    /// account, 1 % newborns, 0.5 % pay twice and are refunded. The same
    /// seed gives the same file.
    Generate {
        /// How many persons.
        #[arg(long)]
        persons: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Region-year policies (地区年度政策): figures and coverage rules.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Family-account proxy payments (职工医保个人账户家庭共济代缴): bindings,
    /// applications and their steps, the personal account, the stuck list.
    #[command(subcommand)]
    Family(family::FamilyCommand),
    /// Refund (part of) a payment back where it came from: its channel, the
    /// personal account (proxy), or the funders (subsidy, in their split).
    Refund(refund::RefundArgs),
    /// 参保缴费证明: the payment certificate of a received person-year, or
    /// `certificate verify FILE` against the log.
    Certificate(certificate::CertificateArgs),
    /// The office's SM2 signing key (signed tree heads, certificates that
    /// verify offline): `keys init`, `keys show`.
    #[command(subcommand)]
    Keys(signing::KeysCommand),
    /// Signed tree heads of the log's Merkle tree: `checkpoint sign`,
    /// `checkpoint verify FILE --public-key KEY` (offline),
    /// `checkpoint check FILE --public-key KEY` (against the log).
    #[command(subcommand)]
    Checkpoint(signing::CheckpointCommand),
    /// Build a ledger from the embedded fixtures and show what it does.
    Demo,
    /// Serve the ledger over HTTP: coverage lookups (also as of a moment),
    /// history, certificates, family accounts and proxy steps, the unpaid
    /// list, audit jobs (verify, replay), metrics, and posting facts as
    /// `import` does; the office page at `/`, the API described at
    /// `/v1/openapi.json`. Stops on SIGTERM or ctrl-c after in-flight
    /// requests, saving the coverage checkpoint.
    Serve(serve::ServeArgs),
    /// Who looked a person up through the service, and when: the lines of
    /// `DIR/access.log` for this ID (matched by its keyed digest, so persons
    /// who share a masked ID are told apart).
    Access {
        /// ID number of the person looked up.
        id: String,
        /// As JSON Lines.
        #[arg(long)]
        json: bool,
    },
    /// Compare bank and channel receipts with the recorded payments and
    /// refunds; list every difference; record the run in the log.
    ///
    /// Formats: ISO 20022 camt.053/054 (`.xml`), MT940, WeChat Pay and
    /// Alipay merchant bills (plain, gzip or zip), batch-collection returns,
    /// any CSV or Excel workbook with `--mapping FILE` (columns, encoding
    /// UTF-8/GBK, title and footer rows, …) or a shipped preset (`--format
    /// icbc`). Exit 0 when fully reconciled, 1 with breaks, 2
    /// when a file cannot be read (nothing recorded).
    Reconcile {
        /// Receipt files (statements, bills).
        #[arg(required_unless_present = "show_format")]
        files: Vec<PathBuf>,
        /// camt053 | camt054 | mt940 | wechat | alipay, a preset: icbc, ccb,
        /// abc, boc, bocom, cmb (bank statements), tax (the tax bureau's
        /// premium export), rural-credit-return (a batch auto-debit
        /// return), or csv | batch-return with --mapping (default: from the
        /// file's content, inside a gzip or zip).
        #[arg(long)]
        format: Option<String>,
        /// Print a preset's mapping or layout (TOML), to copy and adjust, or
        /// what a built-in reader reads, and exit.
        #[arg(long, value_name = "NAME")]
        show_format: Option<String>,
        /// The column mapping of a generic CSV or workbook, or the layout
        /// of a batch return (TOML with kind = "batch-return").
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The ledger's channel name for the receipts (e.g. the channel a
        /// bank account collects for); only that channel's payments and
        /// refunds are compared. Default: any channel.
        #[arg(long)]
        channel: Option<String>,
        /// First business day compared (with --to).
        #[arg(long)]
        from: Option<Date>,
        /// Last business day compared (with --from).
        #[arg(long)]
        to: Option<Date>,
        /// Days a receipt's booking date may differ from a payment's date
        /// when matching by amount + payer + date.
        #[arg(long, default_value_t = 3)]
        tolerance_days: u32,
        /// Also write every finding as CSV to this file.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The summary and breaks as JSON.
        #[arg(long)]
        json: bool,
        /// Do not record the run in the log.
        #[arg(long)]
        no_record: bool,
    },
    /// Merkle tree heads and proofs of the log, and their offline check.
    ///
    /// The ledger's records are the leaves of a Merkle tree (RFC 9162's
    /// shape, SM3). Its root at a size, the tree head, is what a hospital,
    /// a bank or an auditor keeps; an inclusion proof shows that a record is
    /// in the tree of a head, a consistency proof that a later head extends
    /// an earlier one (nothing recorded before it changed or went). `proof
    /// verify` checks either from the proof file and a trusted head alone.
    #[command(subcommand)]
    Proof(proof_cmd::ProofCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy TOML file and record it in the log.
    ///
    /// The first document of a region and coverage year is published; a
    /// document whose content differs from the latest is an amendment; the
    /// same content again appends nothing. Coverage is computed from the
    /// policies in the log only. See fixtures/policies/ for the format.
    Load {
        /// The policy document (TOML).
        file: PathBuf,
        /// Why the policy changed (recorded with an amendment).
        #[arg(long)]
        reason: Option<String>,
    },
}

fn main() -> ExitCode {
    private_files::restrict_new_files();
    let cli = Cli::parse();
    let location = match operations::Location::choose(&cli.data, cli.store.as_deref()) {
        Ok(location) => location,
        Err(error) => return exit::report(Err(exit::classified(error).context("--store"))),
    };
    // On PostgreSQL the data directory holds only this process's own files
    // (channels, checkpoints, the access log and its key): a replica's new
    // one is made here rather than by `init`, which another process ran.
    if location.postgres_url().is_some() {
        if let Err(error) = std::fs::create_dir_all(&location.data) {
            let error =
                anyhow::Error::new(error).context(format!("creating the data directory {}", location.data.display()));
            return exit::report(Err(error));
        }
    }
    let result = match cli.command {
        Command::Init => commands::init(&location),
        Command::Import { file, restore: true, .. } => commands::restore(&location, &file),
        Command::Import { file, restore: false, actor, chunk_facts, json } => {
            commands::import(&location, &file, actor, commands::ImportArgs { chunk_facts: chunk_facts as usize, json })
        }
        Command::Backup { dir, check: true, json, .. } | Command::Restore { backup: dir, check: true, json, .. } => {
            backup_cmd::check(&dir, json)
        }
        Command::Backup { dir, check: false, segment_bytes, json } => {
            backup_cmd::backup(&location, &dir, segment_bytes as usize, json)
        }
        Command::Restore { backup, with, check: false, json } => backup_cmd::restore(&location, &backup, &with, json),
        Command::Log { from, limit, json } => commands::log(&location, from, limit, json),
        Command::Verify { from, to, signed_heads, public_key } => commands::verify(&location, from, to.unwrap_or(0))
            .and_then(|()| match public_key {
                Some(key) => signed_heads.iter().try_for_each(|head| signing::check(&location, head, &key)),
                None => Ok(()),
            }),
        Command::Export { jsonl: _, out } => commands::export(&location, out.as_deref()),
        Command::Salvage { out } => commands::salvage(&location, &out),
        Command::Register { id, name, region, birth_date, registered_on, basis } => {
            single::register(&location, single::Registration { id, name, region, birth_date, registered_on, basis })
        }
        Command::Pay { id, year, amount, channel, channel_ref, paid_at, paid_for_by, collector } => single::pay(
            &location,
            single::Payment { id, year, amount, channel, channel_ref, paid_at, paid_for_by, collector },
        ),
        Command::Coverage { id, year, on, json, as_of } => lookup::show(&location, &id, year, on, json, as_of),
        Command::Replay { year, region, as_of, on, check, csv, json } => {
            replay_cmd::run(&location, replay_cmd::ReplayArgs { year, region, as_of, on, check, csv, json })
        }
        Command::History { id, scan } => lookup::history(&location, &id, scan),
        Command::Unpaid { region, year, json } => lookup::unpaid(&location, region, year, json),
        Command::Assess { id, year, groups, on } => lookup::assess(&location, &id, year, &groups, on),
        Command::Generate { persons, seed, out } => single::generate(persons, seed, out.as_deref()),
        Command::Policy(PolicyCommand::Load { file, reason }) => policy::load(&location, &file, reason),
        Command::Family(command) => family::run(&location, command),
        Command::Refund(args) => refund::run(&location, args),
        Command::Certificate(args) => certificate::run(&location, args),
        Command::Keys(command) => signing::keys(&location, command),
        Command::Checkpoint(command) => signing::checkpoint(&location, command),
        Command::Demo => demo::run(&location),
        Command::Serve(args) => serve::run(&location, args),
        Command::Access { id, json } => serve::lookups_of(&cli.data, &id, json),
        Command::Proof(command) => proof_cmd::run(&location, command),
        Command::Reconcile { show_format: Some(name), .. } => reconcile_cmd::show_format(&name),
        Command::Reconcile {
            files, format, mapping, channel, from, to, tolerance_days, csv, json, no_record, ..
        } => reconcile_cmd::run(
            &location,
            reconcile_cmd::ReconcileArgs {
                files,
                format,
                mapping,
                channel,
                from,
                to,
                tolerance_days,
                csv,
                json,
                record: !no_record,
            },
        ),
    };
    exit::report(result)
}
