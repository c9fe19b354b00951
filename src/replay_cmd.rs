//! `yibao replay`: the auditor's rebuild of a coverage year from the log
//! alone (`operations::replay`), rendered as text, JSON or CSV; drift
//! against the live projection goes to standard error and exits 1.

use crate::exit::{classified, Findings};
use anyhow::Result;
use ledger::{Date, OpenMode, RegionCode, UtcTime};
use operations::progress;
use operations::replay::{DriftCheck, FlagNames, ReplayInput, Replayed};
use operations::Ledger;
use operations::Location;
use projections::coverage::source_words;
use replay::audit::AuditReport;

/// What `yibao replay` was asked.
pub struct ReplayArgs {
    pub year: u16,
    pub region: Option<RegionCode>,
    pub as_of: Option<UtcTime>,
    pub on: Option<Date>,
    pub check: bool,
    pub csv: bool,
    pub json: bool,
}

/// How this command names the inputs a replay may refuse.
const FLAGS: FlagNames = FlagNames { check: "--check", as_of: "--as-of" };

pub fn run(location: &Location, args: ReplayArgs) -> Result<()> {
    let input = ReplayInput {
        coverage_year: args.year,
        region: args.region,
        as_of: args.as_of,
        on: args.on,
        check: args.check,
    };
    operations::replay::check_input(&input, FLAGS).map_err(classified)?;
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let bar = progress::bar(ledger.log().durable_head().position, "replay");
    let replayed = ledger.replay(&input, FLAGS, &mut |n| bar.set_position(n)).map_err(classified)?;
    bar.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&replayed)?);
    } else if args.csv {
        print_csv(&replayed.report)?;
    } else {
        print_table(&replayed.report, replayed.rebuild_seconds);
    }
    report_drift(&replayed)
}

/// The drift check on standard error; person-years that differ exit 1.
fn report_drift(replayed: &Replayed) -> Result<()> {
    let Some(check) = &replayed.drift else { return Ok(()) };
    if let DriftCheck::Skipped { skipped } = check {
        eprintln!("drift check skipped: {skipped}");
        return Ok(());
    }
    let drifts = check.differing();
    if drifts.is_empty() {
        eprintln!("drift check: the live projection agrees with the rebuild on every person-year");
        return Ok(());
    }
    for drift in drifts {
        for (field, live, rebuilt) in &drift.fields {
            eprintln!("drift: {} {} {field}: live {live}, rebuilt {rebuilt}", drift.person, drift.coverage_year);
        }
    }
    Err(Findings(format!("{} person-year(s) differ from the rebuild", drifts.len())).into())
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
    for (source, amount) in r.by_source() {
        outln!("  {:<36} {:>16}", source_words(source), amount.to_string());
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
        if what == "to funders" {
            for (funder, amount) in &f.to_funders_by_funder {
                outln!("    {:<34} {:>16}", funder, amount.to_string());
            }
        }
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

fn print_csv(report: &AuditReport) -> Result<()> {
    out!("{}", csv_text(report)?);
    Ok(())
}

/// The report as `section,item,value` rows, quoted by the `csv` crate: a
/// funder or group name may hold a comma, a quote or a line break.
fn csv_text(report: &AuditReport) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["section", "item", "value"])?;
    let mut row = |section: &str, item: &str, value: String| writer.write_record([section, item, value.as_str()]);
    for (state, n) in &report.persons_by_state {
        row("persons_by_state", state, n.to_string())?;
    }
    let r = &report.received.paid;
    for (item, amount) in r.by_source().into_iter().chain([
        ("subsidy_total", r.subsidy_total),
        ("total", r.total),
        ("fiscal_subsidy", report.received.fiscal_subsidy),
    ]) {
        row("received", item, amount.to_string())?;
    }
    for (funder, amount) in &r.subsidy {
        row("received", &format!("subsidy:{funder}"), amount.to_string())?;
    }
    let f = &report.refunded;
    for (item, amount) in [
        ("to_channel", f.to_channel),
        ("to_personal_account", f.to_personal_account),
        ("to_funders", f.to_funders),
        ("total", f.total),
    ] {
        row("refunded", item, amount.to_string())?;
    }
    for (funder, amount) in &f.to_funders_by_funder {
        row("refunded", &format!("to_funder:{funder}"), amount.to_string())?;
    }
    row("totals", "net", report.net.to_string())?;
    row("totals", "outstanding", report.outstanding.to_string())?;
    row("counts", "late_payers", report.n_late_payers.to_string())?;
    row("counts", "newborns", report.n_newborns.to_string())?;
    for (group, n) in &report.hardship_groups {
        row("hardship_groups", group, n.to_string())?;
    }
    if let Some(n) = report.n_covered_on {
        row("counts", "covered_on", n.to_string())?;
    }
    row("head", "position", report.position.to_string())?;
    row("head", "hash", report.head_hash.clone())?;
    row("digest", "state", report.digest.clone())?;
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {}", e.error()))?;
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Money;
    use std::collections::BTreeMap;

    fn report_naming(funder: &str, group: &str) -> AuditReport {
        let mut received = replay::audit::Received::default();
        received.paid.subsidy.insert(funder.to_string(), Money::from_yuan(400));
        AuditReport {
            coverage_year: 2025,
            region: None,
            as_of: None,
            on: None,
            position: 7,
            head_hash: "ab".into(),
            n_events: 7,
            n_person_years: 1,
            persons_by_state: BTreeMap::from([("received".to_string(), 1)]),
            received,
            refunded: replay::audit::Returned::default(),
            net: Money::from_yuan(400),
            outstanding: Money::ZERO,
            n_late_payers: 0,
            n_newborns: 0,
            hardship_groups: BTreeMap::from([(group.to_string(), 1)]),
            n_covered_on: None,
            digest: "cd".into(),
        }
    }

    #[test]
    fn names_with_commas_quotes_and_line_breaks_round_trip() {
        let funder = "Red Cross, \"Bijie\"\nbranch";
        let group = "poor,\"old\"\nage";
        let text = csv_text(&report_naming(funder, group)).expect("CSV");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().expect("a header").clone();
        assert_eq!(headers.iter().collect::<Vec<_>>(), ["section", "item", "value"]);
        let rows: Vec<Vec<String>> =
            reader.records().map(|record| record.expect("a record").iter().map(str::to_string).collect()).collect();
        assert!(rows.iter().all(|row| row.len() == 3), "{rows:?}");
        let subsidy = ["received".to_string(), format!("subsidy:{funder}"), "400.00".to_string()];
        assert!(rows.contains(&subsidy.to_vec()), "{text}");
        let hardship = ["hardship_groups".to_string(), group.to_string(), "1".to_string()];
        assert!(rows.contains(&hardship.to_vec()), "{text}");
        assert!(rows.contains(&["digest".to_string(), "state".to_string(), "cd".to_string()].to_vec()));
    }
}
