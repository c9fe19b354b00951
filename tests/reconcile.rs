//! `yibao reconcile` end to end: receipts against the demo ledger, each
//! break kind, the recorded run, bad input.

use std::path::Path;
use std::process::{Command, Output};

const RECEIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/receipts");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibao")).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ledger(data: &Path) {
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    for file in [DEMO.to_string(), format!("{RECEIPTS}/ledger-payments.jsonl")] {
        let imported = yibao(data, &["import", &file]);
        assert_eq!(imported.status.code(), Some(0), "{}", text(&imported.stderr));
    }
}

fn head(data: &Path) -> String {
    text(&yibao(data, &["verify"]).stdout).lines().find(|l| l.starts_with("OK: head")).unwrap_or_default().to_string()
}

#[test]
fn a_clean_statement_reconciles_and_the_run_is_recorded_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let clean = format!("{RECEIPTS}/camt053-clean.xml");
    let args = ["reconcile", clean.as_str(), "--from", "2024-10-01", "--to", "2024-11-30"];
    let first = yibao(data, &args);
    assert_eq!(first.status.code(), Some(0), "{}{}", text(&first.stdout), text(&first.stderr));
    assert!(text(&first.stdout).contains("fully reconciled"), "{}", text(&first.stdout));
    assert!(text(&first.stderr).contains("recorded at position 53"), "{}", text(&first.stderr));
    let log = yibao(data, &["log", "--from", "53", "--json"]);
    assert!(text(&log.stdout).contains("reconciliation_recorded"), "{}", text(&log.stdout));
    // The same files against the same head: the run is already recorded.
    let again = yibao(data, &args);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stderr).contains("already recorded at position 53"), "{}", text(&again.stderr));
}

#[test]
fn every_break_is_listed_with_its_source_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let breaks = format!("{RECEIPTS}/camt053-breaks.xml");
    let csv_out = data.join("findings.csv");
    let csv_text = csv_out.to_str().expect("utf-8");
    let output = yibao(data, &["reconcile", &breaks, "--from", "2024-10-01", "--to", "2024-11-30", "--csv", csv_text]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    for expected in [
        "amount mismatch: receipt GZYB20241020101500 380.00",
        "ledger position 43",
        "duplicate receipt: receipt NX20241108000102",
        "receipt only: receipt AP2024102699990001",
        "Ntry[4]",
        "ledger only; ledger position 44 alipay/AP2024102514300018",
        "matched by amount payer date",
    ] {
        assert!(report.contains(expected), "missing `{expected}` in:\n{report}");
    }
    let findings = std::fs::read_to_string(&csv_out).expect("csv written");
    assert!(findings.starts_with("result,side,"), "{findings}");
    assert!(findings.contains("amount_mismatch,payment,"), "{findings}");
    let mut reader = csv::Reader::from_reader(findings.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|row| row.expect("a CSV record")).collect();
    assert!(rows.iter().any(|row| &row[3] == "GZYB20241020101500" && &row[4] == "380.00"), "{findings}");
    let as_json =
        yibao(data, &["reconcile", &breaks, "--from", "2024-10-01", "--to", "2024-11-30", "--json", "--no-record"]);
    let value: serde_json::Value = serde_json::from_slice(&as_json.stdout).expect("JSON");
    assert_eq!(value["clean"], false);
    assert_eq!(value["breaks"].as_array().map(Vec::len), Some(4));
}

#[test]
fn other_formats_and_unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let gbk = format!("{RECEIPTS}/nongxin-20241108-20241112.csv");
    let mapping = format!("{RECEIPTS}/nongxin.toml");
    let mapped = yibao(
        data,
        &["reconcile", &gbk, "--mapping", &mapping, "--from", "2024-11-08", "--to", "2024-11-12", "--no-record"],
    );
    assert_eq!(mapped.status.code(), Some(0), "{}{}", text(&mapped.stdout), text(&mapped.stderr));
    let wechat = format!("{RECEIPTS}/wechat-20241101.csv");
    let bill = yibao(data, &["reconcile", &wechat, "--from", "2024-11-01", "--to", "2024-11-01", "--no-record"]);
    assert_eq!(bill.status.code(), Some(0), "{}{}", text(&bill.stdout), text(&bill.stderr));

    let before = head(data);
    let bad = data.join("bad.xml");
    std::fs::write(&bad, "<Document><BkToCstmrStmt>").expect("write");
    let refused = yibao(data, &["reconcile", bad.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("bad.xml"), "{}", text(&refused.stderr));
    assert_eq!(head(data), before, "an unreadable file recorded something");
    let no_mapping = yibao(data, &["reconcile", &gbk, "--format", "csv"]);
    assert_eq!(no_mapping.status.code(), Some(2));
    assert!(text(&no_mapping.stderr).contains("--mapping"), "{}", text(&no_mapping.stderr));
}

/// Copies a receipt fixture into the data directory under another name.
fn copy_as(data: &Path, fixture: &str, name: &str) -> String {
    let copy = data.join(name);
    std::fs::copy(format!("{RECEIPTS}/{fixture}"), &copy).expect("copy fixture");
    copy.to_str().expect("utf-8").to_string()
}

#[test]
fn the_same_statement_under_another_name_is_the_same_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let clean = format!("{RECEIPTS}/camt053-clean.xml");
    let first = yibao(data, &["reconcile", &clean, "--from", "2024-10-01", "--to", "2024-11-30"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("recorded at position 53"), "{}", text(&first.stderr));
    let before = head(data);
    let renamed = copy_as(data, "camt053-clean.xml", "statement-copy.xml");
    let again = yibao(data, &["reconcile", &renamed, "--from", "2024-10-01", "--to", "2024-11-30"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already recorded at position 53"), "{}", text(&again.stderr));
    assert_eq!(head(data), before, "the same run was recorded twice");
}

#[test]
fn a_run_with_other_options_or_results_is_a_new_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let gbk = format!("{RECEIPTS}/nongxin-20241108-20241112.csv");
    let period = ["--from", "2024-11-08", "--to", "2024-11-12"];
    let mapping = format!("{RECEIPTS}/nongxin.toml");
    let first = yibao(data, &[&["reconcile", gbk.as_str(), "--mapping", mapping.as_str()][..], &period].concat());
    assert_eq!(first.status.code(), Some(0), "{}{}", text(&first.stdout), text(&first.stderr));
    assert!(text(&first.stderr).contains("recorded at position 53"), "{}", text(&first.stderr));
    // Another channel in the mapping: nothing matches by reference any more.
    let changed = data.join("nongxin-other-channel.toml");
    let toml = std::fs::read_to_string(&mapping).expect("mapping");
    std::fs::write(&changed, toml.replace("\"guizhou_rural_credit\"", "\"unionpay\"")).expect("write mapping");
    let changed = changed.to_str().expect("utf-8");
    let second = yibao(data, &[&["reconcile", gbk.as_str(), "--mapping", changed][..], &period].concat());
    assert_eq!(second.status.code(), Some(1), "{}{}", text(&second.stdout), text(&second.stderr));
    assert!(text(&second.stderr).contains("recorded at position 54"), "{}", text(&second.stderr));
    // Another tolerance gives the same results here, but is another run.
    let third = yibao(
        data,
        &[&["reconcile", gbk.as_str(), "--mapping", mapping.as_str(), "--tolerance-days", "5"][..], &period].concat(),
    );
    assert_eq!(third.status.code(), Some(0), "{}", text(&third.stderr));
    assert!(text(&third.stderr).contains("recorded at position 55"), "{}", text(&third.stderr));
}

#[test]
fn a_file_of_another_format_says_so_and_lists_the_formats_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let before = head(data);
    let mt103 = data.join("statement.csv");
    std::fs::write(&mt103, "{1:F01BANKCNBJAXXX0000000000}{4:\n:20:X\n:21:Y\n:32A:241005CNY400,00\n-}\n")
        .expect("write");
    let mt103 = mt103.to_str().expect("utf-8");
    let refused = yibao(data, &["reconcile", mt103]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let expected = format!(
        "error: {mt103}: not a format yibao reads (looks like a SWIFT MT message); formats read: {}\n",
        reconcile::FORMATS_READ
    );
    assert_eq!(text(&refused.stderr), expected);
    // Named as a WeChat bill, it is still not read as one.
    let named = yibao(data, &["reconcile", mt103, "--format", "wechat"]);
    assert_eq!(named.status.code(), Some(2));
    assert!(text(&named.stderr).contains("looks like a SWIFT MT message"), "{}", text(&named.stderr));
    let pdf = data.join("statement.xml");
    std::fs::write(&pdf, b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n").expect("write");
    let refused = yibao(data, &["reconcile", pdf.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("statement.xml: not a format yibao reads (looks like PDF)"));
    assert_eq!(head(data), before, "an unread file recorded something");
}

#[test]
fn a_file_that_cannot_be_read_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let missing = data.join("missing.xml");
    let missing = missing.to_str().expect("utf-8");
    let refused = yibao(data, &["reconcile", missing]);
    assert_eq!(refused.status.code(), Some(2));
    let message = text(&refused.stderr);
    assert!(message.contains(&format!("reading {missing}: No such file or directory")), "{message}");
    let gbk = format!("{RECEIPTS}/nongxin-20241108-20241112.csv");
    let no_mapping = data.join("missing.toml");
    let no_mapping = no_mapping.to_str().expect("utf-8");
    let refused = yibao(data, &["reconcile", &gbk, "--mapping", no_mapping]);
    assert_eq!(refused.status.code(), Some(2));
    let message = text(&refused.stderr);
    assert!(message.contains(&format!("reading {no_mapping}: No such file or directory")), "{message}");
}
#[test]
fn a_statement_cut_short_is_refused_and_nothing_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let before = head(data);
    let whole = std::fs::read_to_string(format!("{RECEIPTS}/camt053-clean.xml")).expect("fixture");
    // A complete statement, then a second one cut inside an entry.
    let start = whole.find("    <Stmt>").expect("Stmt");
    let end = whole.find("</Stmt>").expect("end of Stmt") + "</Stmt>\n".len();
    let second = &whole[start..end];
    let cut_at = second.find("<NtryRef>3</NtryRef>").expect("entry 3");
    let cut = format!("{}{}", &whole[..end], &second[..cut_at]);
    let file = data.join("cut.xml");
    std::fs::write(&file, &cut).expect("write");
    let refused =
        yibao(data, &["reconcile", file.to_str().expect("utf-8"), "--from", "2024-10-01", "--to", "2024-11-30"]);
    assert_eq!(refused.status.code(), Some(2), "{}{}", text(&refused.stdout), text(&refused.stderr));
    let message = text(&refused.stderr);
    assert!(message.contains("cut.xml: /Document/BkToCstmrStmt/Stmt[2]/Ntry[3]: the file ends early"), "{message}");
    assert!(!text(&refused.stdout).contains("fully reconciled"), "{}", text(&refused.stdout));
    assert_eq!(head(data), before, "a cut statement recorded something");
}

/// A bank file spells references and channels its own way (full-width
/// letters from a GBK export, a padded field, `WeChat`): they are compared
/// in the form the ledger records, so each still finds its payment; an
/// unknown `--channel` is refused, listing the known ones.
#[test]
fn receipts_are_compared_in_the_ledgers_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let gbk = std::fs::read(format!("{RECEIPTS}/nongxin-20241108-20241112.csv")).expect("read fixture");
    // `ＮＸ` in GBK is A3CE A3D8: the first reference in full-width letters.
    let full_width: Vec<u8> = [&[0xA3, 0xCE, 0xA3, 0xD8][..], b"20241108000101"].concat();
    let respelled = replace_bytes(&gbk, b"NX20241108000101", &full_width);
    let respelled = replace_bytes(&respelled, b",NX20241108000102,", b",  NX20241108000102 ,");
    let csv = data.join("nongxin-respelled.csv");
    std::fs::write(&csv, respelled).expect("write");
    let mapping = std::fs::read_to_string(format!("{RECEIPTS}/nongxin.toml")).expect("mapping");
    let mapping_path = data.join("nongxin-respelled.toml");
    let mapping = mapping.replace("channel = \"guizhou_rural_credit\"", "channel = \"Guizhou_Rural_Credit\"");
    std::fs::write(&mapping_path, mapping).expect("write");
    let args = ["--from", "2024-11-08", "--to", "2024-11-12", "--no-record"];
    let csv_text = csv.to_str().expect("utf-8");
    let mapped = yibao(
        data,
        &[&["reconcile", csv_text, "--mapping", mapping_path.to_str().expect("utf-8")][..], &args].concat(),
    );
    assert_eq!(mapped.status.code(), Some(0), "{}{}", text(&mapped.stdout), text(&mapped.stderr));

    let wechat = format!("{RECEIPTS}/wechat-20241101.csv");
    let day = ["--from", "2024-11-01", "--to", "2024-11-01", "--no-record"];
    let bill = yibao(data, &[&["reconcile", wechat.as_str(), "--channel", " WeChat "][..], &day].concat());
    assert_eq!(bill.status.code(), Some(0), "{}{}", text(&bill.stdout), text(&bill.stderr));
    let unknown = yibao(data, &[&["reconcile", wechat.as_str(), "--channel", "wepay"][..], &day].concat());
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    let message = text(&unknown.stderr);
    assert!(message.contains("wepay") && message.contains("wechat") && message.contains("channels.toml"), "{message}");
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack.windows(from.len()).position(|window| window == from).expect("the bytes to replace");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

#[test]
fn presets_are_named_by_format_and_printed_to_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let shown = yibao(data, &["reconcile", "--show-format", "icbc"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reconcile/presets/icbc.toml"));
    assert_eq!(text(&shown.stdout), shipped.expect("the shipped preset"));
    let unknown = yibao(data, &["reconcile", "--show-format", "nosuchbank"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("icbc, ccb, abc, boc, bocom, cmb, tax"), "{}", text(&unknown.stderr));
    // Every named format is shown alike: a layout as shipped, a reader by what it reads.
    let layout = yibao(data, &["reconcile", "--show-format", "rural-credit-return"]);
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reconcile/presets/rural-credit-return.toml"));
    assert_eq!(text(&layout.stdout), shipped.expect("the shipped layout"));
    let reader = yibao(data, &["reconcile", "--show-format", "alipay"]);
    assert_eq!(reader.status.code(), Some(0), "{}", text(&reader.stderr));
    assert!(text(&reader.stdout).contains("Alipay merchant bill") && text(&reader.stdout).contains("no mapping"));

    let before = head(data);
    let tax = format!("{RECEIPTS}/tax-20241101-20241130.xls");
    let run = yibao(data, &["reconcile", "--format", "tax", &tax, "--no-record"]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}{}", text(&run.stderr));
    assert!(stdout.contains("tax-20241101-20241130.xls (excel): 3 receipt(s)"), "{stdout}");
    // The row whose status is not received is listed as a batch return's failed debit is.
    let listed = stdout.split("not received: listed by the file, never counted as paid (1):").nth(1);
    let listed = listed.unwrap_or_default().split("breaks (").next().unwrap_or_default();
    assert!(listed.contains("352024110600000003 ") && listed.contains(" status "), "{stdout}");
    let breaks = stdout.split("breaks (").nth(1).unwrap_or_default();
    assert!(breaks.contains("352024110500000001") && !breaks.contains("352024110600000003"), "{stdout}");

    let both = yibao(data, &["reconcile", "--format", "tax", "--mapping", &format!("{RECEIPTS}/nongxin.toml"), &tax]);
    assert_eq!(both.status.code(), Some(2));
    assert!(text(&both.stderr).contains("give --mapping or --format tax, not both"), "{}", text(&both.stderr));
    let unnamed = yibao(data, &["reconcile", &tax]);
    assert_eq!(unnamed.status.code(), Some(2));
    assert!(text(&unnamed.stderr).contains("whose first sheet starts with the cells"), "{}", text(&unnamed.stderr));
    assert_eq!(head(data), before, "nothing was recorded");
}

#[test]
fn a_masked_id_matches_with_the_name_the_person_is_registered_under() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let mapping = data.join("tax.toml");
    std::fs::write(
        &mapping,
        "[columns]\nreference = \"电子税票号码\"\npayer_id = \"证件号码\"\npayer_name = \"缴费人名称\"\n\
         amount = \"实缴金额\"\ndate = \"缴款日期\"\n",
    )
    .expect("write");
    let export = |name: &str| {
        let path = data.join(format!("tax-{name}.csv"));
        let text = format!(
            "电子税票号码,证件号码,缴费人名称,实缴金额,缴款日期\n352024100500000001,520502********1233,{name},400.00,2024-10-05\n"
        );
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let mapping = mapping.to_str().expect("utf-8");
    let period = ["--from", "2024-10-05", "--to", "2024-10-05", "--no-record"];
    let run = yibao(data, &[&["reconcile", &export("张伟"), "--mapping", mapping][..], &period].concat());
    let stdout = text(&run.stdout);
    assert!(stdout.contains("matched by masked id name date payment        1"), "{stdout}{}", text(&run.stderr));
    let other = yibao(data, &[&["reconcile", &export("张三"), "--mapping", mapping][..], &period].concat());
    let stdout = text(&other.stdout);
    assert!(stdout.contains("receipt only") && !stdout.contains("masked id"), "{stdout}");
}

/// A channel's bill against that channel's payments only: the demo's WeChat
/// bill over three days lists none of the village collector's payments of
/// those days, which are breaks against the whole ledger and are left out
/// with `--channel wechat`.
#[test]
fn a_channel_bill_is_compared_with_that_channels_payments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let bill = format!("{RECEIPTS}/wechat-20241101.csv");
    let days = ["--from", "2024-11-01", "--to", "2024-11-03", "--no-record"];
    let whole = yibao(data, &[&["reconcile", bill.as_str()][..], &days].concat());
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole.stdout));
    assert!(text(&whole.stdout).contains("village_collector/QXG-DS-2024-0932"), "{}", text(&whole.stdout));
    let channel = yibao(data, &[&["reconcile", bill.as_str(), "--channel", "wechat"][..], &days].concat());
    assert_eq!(channel.status.code(), Some(0), "{}{}", text(&channel.stdout), text(&channel.stderr));
    assert!(text(&channel.stdout).contains("fully reconciled"), "{}", text(&channel.stdout));
}

/// The files offices receive, each in one command with no format named.
#[test]
fn channel_bills_and_bank_files_reconcile_by_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let cases: [(&[&str], &str, &str); 4] = [
        (&["wechat-success-20241101.csv", "wechat-refund-20241101.csv.gz"], "2024-11-01", "2024-11-01"),
        (&["alipay-20241025.zip"], "2024-10-25", "2024-10-25"),
        (&["camt054-20241015-20241020.xml"], "2024-10-15", "2024-10-20"),
        (&["mt940-20241108-20241112.sta"], "2024-11-08", "2024-11-12"),
    ];
    for (files, from, to) in cases {
        let paths: Vec<String> = files.iter().map(|f| format!("{RECEIPTS}/{f}")).collect();
        let mut args: Vec<&str> = vec!["reconcile"];
        args.extend(paths.iter().map(String::as_str));
        args.extend(["--from", from, "--to", to, "--no-record"]);
        let output = yibao(data, &args);
        assert_eq!(output.status.code(), Some(0), "{files:?}: {}{}", text(&output.stdout), text(&output.stderr));
        assert!(text(&output.stdout).contains("fully reconciled"), "{}", text(&output.stdout));
    }
}

/// A rural-credit auto-debit return: the failed debit is listed and not
/// counted; a trailer that does not add up refuses the file, naming the
/// line and the field, and records nothing.
#[test]
fn a_batch_return_lists_failed_debits_and_checks_its_trailer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let run = format!("{RECEIPTS}/rural-credit-return-20241108.txt");
    let days = ["--from", "2024-11-08", "--to", "2024-11-08", "--no-record"];
    let output = yibao(data, &[&["reconcile", run.as_str(), "--format", "rural-credit-return"][..], &days].concat());
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
    let report = text(&output.stdout);
    assert!(report.contains("(batch-return): 3 receipt(s)"), "{report}");
    assert!(report.contains("not received: listed by the file, never counted as paid (1):"), "{report}");
    assert!(report.contains("NX20241108000104 400.00 failed with code 1001"), "{report}");

    let before = head(data);
    let bytes = std::fs::read(&run).expect("fixture");
    let changed = replace_bytes(&bytes, b"T|4|1600.00|3|1200.00", b"T|4|1600.00|3|1600.00");
    let bad = data.join("return.txt");
    std::fs::write(&bad, changed).expect("write");
    let bad = bad.to_str().expect("utf-8");
    let refused = yibao(data, &["reconcile", bad, "--from", "2024-11-08", "--to", "2024-11-08"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stdout));
    let message = text(&refused.stderr);
    assert!(message.contains(&format!("{bad}: line 6, field `success_total`: expected 1200.00")), "{message}");
    assert_eq!(head(data), before, "a refused return recorded something");
}
