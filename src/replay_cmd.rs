//! `yibao replay`: the auditor's rebuild of a coverage year from the log
//! alone, its report, its digest, and the drift check against the live
//! projection.

use crate::commands::open;
use crate::exit::{BadInput, Findings};
use crate::progress;
use anyhow::Result;
use ledger::{Date, LogReader, Money, OpenMode, RegionCode, UtcTime};
use replay::audit::{self, AuditReport, Rebuilt};
use std::path::Path;
use std::time::Instant;

/// What `yibao replay` was asked.
pub struct ReplayArgs {
    pub year: u16,
    pub region: Option<String>,
    pub as_of: Option<String>,
    pub on: Option<String>,
    pub check: bool,
    pub csv: bool,
    pub json: bool,
}

pub fn parse_moment(text: &str) -> Result<UtcTime> {
    text.parse().map_err(|e| BadInput(format!("--as-of: {e} (RFC 3339 such as 2025-03-01T12:00:00Z)")).into())
}

/// Rebuilds with a progress bar on long logs; quiet when not a terminal.
pub fn rebuild(log: &dyn LogReader, as_of: Option<UtcTime>) -> Result<(Rebuilt, f64)> {
    let bar = progress::bar(log.durable_head().position, "replay");
    let started = Instant::now();
    let rebuilt = audit::rebuild_as_of(log, as_of, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    Ok((rebuilt, started.elapsed().as_secs_f64()))
}

pub fn run(data: &Path, args: ReplayArgs) -> Result<()> {
    let region: Option<RegionCode> =
        args.region.as_deref().map(|text| text.parse().map_err(|e| BadInput(format!("--region: {e}")))).transpose()?;
    let as_of = args.as_of.as_deref().map(parse_moment).transpose()?;
    let on: Option<Date> =
        args.on.as_deref().map(|text| text.parse().map_err(|e| BadInput(format!("--on: {e}")))).transpose()?;
    let log = open(data, OpenMode::Existing)?;
    let (rebuilt, seconds) = rebuild(&log, as_of)?;
    let mut report = audit::report(&rebuilt, args.year, region, on);
    report.as_of = as_of;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        print_csv(&report);
    } else {
        print_table(&report, seconds);
    }
    if args.check {
        let live = crate::lookup::coverage(data, &log)?;
        if as_of.is_some() {
            return Err(BadInput("--check compares with the live projection: leave out --as-of".into()).into());
        }
        let drifts = audit::drift(&live, &rebuilt.coverage, args.year, region);
        if drifts.is_empty() {
            eprintln!("drift check: the live projection agrees with the rebuild on every person-year");
        } else {
            for drift in &drifts {
                for (field, live, rebuilt) in &drift.fields {
                    eprintln!(
                        "drift: {} {} {field}: live {live}, rebuilt {rebuilt}",
                        drift.person, drift.coverage_year
                    );
                }
            }
            return Err(Findings(format!("{} person-year(s) differ from the rebuild", drifts.len())).into());
        }
    }
    Ok(())
}

fn print_table(report: &AuditReport, seconds: f64) {
    let region = report.region.map_or("all regions".to_string(), |r| r.to_string());
    outln!("audit of coverage year {} in {region}", report.coverage_year);
    match report.as_of {
        Some(moment) => outln!("as known at {moment} (transaction time)"),
        None => outln!("as known now"),
    }
    outln!(
        "rebuilt from the log: {} events up to position {} in {seconds:.2} s ({:.0} events/s)",
        report.n_events,
        report.position,
        report.n_events as f64 / seconds.max(1e-9)
    );
    outln!("\npersons by state ({} person-years)", report.n_person_years);
    for (state, n) in &report.persons_by_state {
        outln!("  {:<22} {n:>10}", state.replace('_', " "));
    }
    let r = &report.received.paid;
    outln!("\nreceived");
    for (what, amount) in [
        ("self", r.by_self),
        ("paid by another person", r.by_other),
        ("collectors", r.by_collector),
        ("employee accounts (proxy)", r.by_proxy),
    ] {
        outln!("  {what:<36} {:>16}", amount.to_string());
    }
    for (funder, amount) in &r.subsidy {
        outln!("  {:<36} {:>16}", format!("hardship subsidy: {funder}"), amount.to_string());
    }
    outln!("  {:<36} {:>16}", "total", r.total.to_string());
    outln!("  {:<36} {:>16}", "fiscal subsidy (received years)", report.received.fiscal_subsidy.to_string());
    let f = &report.refunded;
    outln!("\nrefunded");
    for (what, amount) in [
        ("to channels", f.to_channel),
        ("to personal accounts", f.to_personal_account),
        ("to funders", f.to_funders),
        ("total", f.total),
    ] {
        outln!("  {what:<36} {:>16}", amount.to_string());
    }
    outln!("\nnet received {}   outstanding {}", report.net, report.outstanding);
    outln!("late payers {}   newborns {}", report.n_late_payers, report.n_newborns);
    for (group, n) in &report.hardship_groups {
        outln!("hardship group {group}: {n}");
    }
    if let (Some(day), Some(n)) = (report.on, report.n_covered_on) {
        outln!("covered on {day}: {n}");
    }
    outln!("\nhead {} {}", report.position, report.head_hash);
    outln!("state digest {}", report.digest);
}

fn print_csv(report: &AuditReport) {
    outln!("section,item,value");
    let money = |amount: Money| amount.to_string();
    for (state, n) in &report.persons_by_state {
        outln!("persons_by_state,{state},{n}");
    }
    let r = &report.received.paid;
    for (item, amount) in [
        ("self", r.by_self),
        ("other", r.by_other),
        ("collector", r.by_collector),
        ("proxy", r.by_proxy),
        ("subsidy_total", r.subsidy_total),
        ("total", r.total),
        ("fiscal_subsidy", report.received.fiscal_subsidy),
    ] {
        outln!("received,{item},{}", money(amount));
    }
    for (funder, amount) in &r.subsidy {
        outln!("received,subsidy:{funder},{}", money(*amount));
    }
    let f = &report.refunded;
    for (item, amount) in
        [("to_channel", f.to_channel), ("to_personal_account", f.to_personal_account), ("to_funders", f.to_funders)]
    {
        outln!("refunded,{item},{}", money(amount));
    }
    outln!("refunded,total,{}", money(f.total));
    outln!("totals,net,{}", money(report.net));
    outln!("totals,outstanding,{}", money(report.outstanding));
    outln!("counts,late_payers,{}", report.n_late_payers);
    outln!("counts,newborns,{}", report.n_newborns);
    for (group, n) in &report.hardship_groups {
        outln!("hardship_groups,{group},{n}");
    }
    if let Some(n) = report.n_covered_on {
        outln!("counts,covered_on,{n}");
    }
    outln!("head,position,{}", report.position);
    outln!("head,hash,{}", report.head_hash);
    outln!("digest,state,{}", report.digest);
}
