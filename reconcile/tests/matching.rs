//! Matching the fixtures against the ledger side built from the demo facts
//! (fixtures/demo/facts.jsonl) and fixtures/receipts/ledger-payments.jsonl.

mod common;

use common::{fixtures_dir, is_duplicate, ledger_items, of_kind, period, plains, receipt_fixture, receipt_text, Plain};
use reconcile::{
    parse_bytes, parse_path, read_mapping, reconcile, reconciliation_recorded, summarize, CheckFailure, FindingKind,
    Format, MatchOptions, ParsedFile, Side,
};

const STMT: &str = "/Document/BkToCstmrStmt/Stmt[1]";
const AUTUMN: (&str, &str) = ("2024-10-01", "2024-11-30");

fn camt(name: &str) -> ParsedFile {
    let (name, bytes) = receipt_fixture(name);
    parse_bytes(&name, &bytes, &Format::Camt053 { channel: None }).expect("camt.053 fixture parses")
}

fn camt_text(name: &str, text: &str) -> ParsedFile {
    parse_bytes(name, text.as_bytes(), &Format::Camt053 { channel: None }).expect("parses")
}

fn options(from_to: (&str, &str), tolerance_days: u32) -> MatchOptions {
    MatchOptions { tolerance_days, period: Some(period(from_to.0, from_to.1)) }
}

fn entry(file: &str, n: u32) -> String {
    format!("{file}:{STMT}/Ntry[{n}]")
}

fn finding(kind: &str, side: Side, receipts: &[String], ledger: &[&str]) -> Plain {
    let mut receipts = receipts.to_vec();
    receipts.sort();
    let mut ledger: Vec<String> = ledger.iter().map(|s| s.to_string()).collect();
    ledger.sort();
    Plain { kind: kind.into(), side, receipts, ledger }
}

#[test]
fn clean_statement_reconciles_fully() {
    let file = camt("camt053-clean.xml");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(AUTUMN, 3));
    assert!(report.checks.is_empty());
    let summary = summarize(&report);
    assert!(summary.is_clean(), "{:#?}", plains(&report.findings));
    let rows: Vec<(&str, Side, u64, u64, i128, u64, i128)> = summary
        .rows
        .iter()
        .map(|r| (r.kind, r.side, r.n_findings, r.n_receipts, r.receipts_fen, r.n_ledger, r.ledger_fen))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("matched_by_reference", Side::Payment, 7, 7, 280_000, 7, 280_000),
            ("matched_by_reference", Side::Refund, 3, 3, 120_000, 3, 120_000),
            ("matched_as_batch", Side::Payment, 2, 2, 320_000, 8, 320_000),
        ]
    );
    let f = "camt053-clean.xml";
    let batches = plains(&of_kind(&report.findings, "matched_as_batch").into_iter().cloned().collect::<Vec<_>>());
    assert_eq!(
        batches,
        vec![
            finding(
                "matched_as_batch",
                Side::Payment,
                &[entry(f, 5)],
                &[
                    "WX20241101083015002@45",
                    "WX20241101101122003@46",
                    "WX20241101120000777@24",
                    "WX20241101154530004@47"
                ]
            ),
            finding(
                "matched_as_batch",
                Side::Payment,
                &[entry(f, 7)],
                &["QXG-DS-2024-0931@25", "QXG-DS-2024-0932@39", "QXG-DS-2024-0933@40", "QXG-DS-2024-0934@41"]
            ),
        ]
    );
}

#[test]
fn without_a_period_the_other_payments_are_ledger_only() {
    let file = camt("camt053-clean.xml");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &MatchOptions::default());
    let ledger_only = plains(&of_kind(&report.findings, "ledger_only").into_iter().cloned().collect::<Vec<_>>());
    assert_eq!(
        ledger_only,
        vec![
            finding("ledger_only", Side::Payment, &[], &["AP2025041016000042@4"]),
            finding("ledger_only", Side::Payment, &[], &["GZYB20250301003000@7"]),
        ]
    );
    assert_eq!(report.period, Some(period("2024-10-05", "2025-04-10")));
}

#[test]
fn every_break_kind_is_reported_with_its_locations() {
    let file = camt("camt053-breaks.xml");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(AUTUMN, 3));
    // The duplicate reference is a (non-fatal) check finding of the statement.
    assert_eq!(report.checks.len(), 1);
    assert!(matches!(
        report.checks[0].failures.as_slice(),
        [CheckFailure::DuplicateReference { reference, .. }] if reference == "NX20241108000102"
    ));
    let f = "camt053-breaks.xml";
    let mut expected = vec![
        finding("matched_by_reference", Side::Payment, &[entry(f, 1)], &["WX20241005093012001@2"]),
        finding("matched_by_amount_payer_date", Side::Payment, &[entry(f, 2)], &["GZB20241015000321@42"]),
        finding("amount_mismatch", Side::Payment, &[entry(f, 3)], &["GZYB20241020101500@43"]),
        finding("receipt_only", Side::Payment, &[entry(f, 4)], &[]),
        finding(
            "matched_as_batch",
            Side::Payment,
            &[entry(f, 5)],
            &["WX20241101083015002@45", "WX20241101101122003@46", "WX20241101120000777@24", "WX20241101154530004@47"],
        ),
        finding("matched_by_reference", Side::Refund, &[entry(f, 6)], &["WXTK20241101163000001@48"]),
        finding(
            "matched_as_batch",
            Side::Payment,
            &[entry(f, 7)],
            &["QXG-DS-2024-0931@25", "QXG-DS-2024-0932@39", "QXG-DS-2024-0933@40", "QXG-DS-2024-0934@41"],
        ),
        finding("matched_by_reference", Side::Payment, &[entry(f, 8)], &["NX20241108000101@49"]),
        finding("matched_by_reference", Side::Payment, &[entry(f, 9)], &["NX20241108000102@50"]),
        finding("duplicate_receipt", Side::Payment, &[entry(f, 10)], &[]),
        finding("matched_by_reference", Side::Payment, &[entry(f, 11)], &["NX20241108000103@51"]),
        // The reversal of the credit matches the refund of that payment.
        finding("matched_by_reference", Side::Refund, &[entry(f, 12)], &["NXTK20241112000001@52"]),
        finding("matched_by_reference", Side::Refund, &[entry(f, 13)], &["TK-2024-11-0005@26"]),
        finding("ledger_only", Side::Payment, &[], &["AP2024102514300018@44"]),
    ];
    expected.sort();
    assert_eq!(plains(&report.findings), expected);

    let duplicate = report.findings.iter().find(|f| is_duplicate(&f.kind)).expect("a duplicate");
    let FindingKind::DuplicateReceipt { first, ledger_position } = &duplicate.kind else { unreachable!() };
    assert_eq!(first.source(), entry(f, 9));
    assert_eq!(*ledger_position, Some(50));

    let mismatch = of_kind(&report.findings, "amount_mismatch")[0];
    assert_eq!((mismatch.receipts[0].amount.fen(), mismatch.ledger[0].amount.fen()), (38_000, 40_000));

    let summary = summarize(&report);
    assert!(!summary.is_clean());
    // Every receipt and every ledger item accounted for, to the fen.
    assert_eq!(summary.receipts(Side::Payment), (10, 6380 * 100));
    assert_eq!(summary.receipts(Side::Refund), (3, 1200 * 100));
    assert_eq!(summary.ledger(Side::Payment), (15, 6000 * 100));
    assert_eq!(summary.ledger(Side::Refund), (3, 1200 * 100));
}

#[test]
fn tolerance_decides_the_amount_payer_date_rule() {
    let file = camt("camt053-breaks.xml");
    let ledger = ledger_items();
    let tight = reconcile(&file.statements, &ledger, &options(AUTUMN, 1));
    assert!(of_kind(&tight.findings, "matched_by_amount_payer_date").is_empty());
    let receipt_only = plains(&of_kind(&tight.findings, "receipt_only").into_iter().cloned().collect::<Vec<_>>());
    assert!(receipt_only.iter().any(|p| p.receipts == vec![entry("camt053-breaks.xml", 2)]));
    let ledger_only = plains(&of_kind(&tight.findings, "ledger_only").into_iter().cloned().collect::<Vec<_>>());
    assert!(ledger_only.iter().any(|p| p.ledger == vec!["GZB20241015000321@42".to_string()]));
    let exact = reconcile(&file.statements, &ledger, &options(AUTUMN, 2));
    assert_eq!(of_kind(&exact.findings, "matched_by_amount_payer_date").len(), 1);
}

#[test]
fn a_batch_with_an_unknown_part_is_matched_part_by_part() {
    let text = receipt_text("camt053-clean.xml").replace("QXG-DS-2024-0934", "QXG-DS-2024-0935");
    let file = camt_text("b.xml", &text);
    let ledger = ledger_items();
    let part = |n: u32| format!("b.xml:{STMT}/Ntry[7]/NtryDtls[1]/TxDtls[{n}]");
    let report = reconcile(&file.statements, &ledger, &options(AUTUMN, 3));
    let mut expected = vec![
        finding("matched_by_reference", Side::Payment, &[part(1)], &["QXG-DS-2024-0931@25"]),
        finding("matched_by_reference", Side::Payment, &[part(2)], &["QXG-DS-2024-0932@39"]),
        finding("matched_by_reference", Side::Payment, &[part(3)], &["QXG-DS-2024-0933@40"]),
        // The unknown reference still carries the payer's ID and amount.
        finding("matched_by_amount_payer_date", Side::Payment, &[part(4)], &["QXG-DS-2024-0934@41"]),
    ];
    expected.sort();
    let parts: Vec<Plain> =
        plains(&report.findings).into_iter().filter(|p| p.receipts.iter().any(|r| r.contains("Ntry[7]"))).collect();
    assert_eq!(parts, expected);
    assert_eq!(of_kind(&report.findings, "matched_as_batch").len(), 1);

    let tight = reconcile(&file.statements, &ledger, &options(AUTUMN, 1));
    let breaks: Vec<Plain> = plains(&tight.findings).into_iter().filter(|p| !p.kind.starts_with("matched")).collect();
    assert_eq!(
        breaks,
        vec![
            finding("ledger_only", Side::Payment, &[], &["QXG-DS-2024-0934@41"]),
            finding("receipt_only", Side::Payment, &[part(4)], &[]),
        ]
    );
}

#[test]
fn a_failing_statement_is_reported_not_matched() {
    let file = camt("camt053-failing-checks.xml");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(("2024-11-01", "2024-12-31"), 3));
    let failed = of_kind(&report.findings, "statement_check_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].receipts.len(), 4);
    let FindingKind::StatementCheckFailed { failures, statement } = &failed[0].kind else { unreachable!() };
    assert_eq!(statement.id.as_deref(), Some("BJSW-2024-11-X"));
    let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            format!("{STMT}/Bal[2]: opening 0.00 + credits 2800.00 - debits 0.00 = 2800.00, but the closing balance is 2000.00"),
            format!("{STMT}/Ntry[2]: booked on 2024-12-02, outside the statement period 2024-11-01 to 2024-11-30"),
            format!("{STMT}/Ntry[3]: entry amount against the sum of its TxDtls declares 1600.00, the detail adds up to 1200.00"),
            format!("{STMT}/Ntry[4]: reference NX20241108000101 already given at {STMT}/Ntry[1]"),
        ]
    );
    assert_eq!(failures.iter().filter(|f| f.is_fatal()).count(), 3);
    // Nothing of the statement was matched: its payments stay ledger-only.
    assert!(report.findings.iter().all(|f| !f.kind.is_match()));
    assert_eq!(of_kind(&report.findings, "ledger_only").len(), 14);
    let summary = summarize(&report);
    assert_eq!(summary.n_rejected_statements, 1);
    let counts = summary.result_counts().expect("counts");
    let rejected = counts.iter().find(|c| c.kind == "statements.rejected").expect("rejected row");
    assert_eq!((rejected.count, rejected.total), (1, ledger::Money::ZERO));
    let receipts = counts.iter().find(|c| c.kind == "receipts.statement_check_failed.payment").expect("receipts row");
    assert_eq!((receipts.count, receipts.total.fen()), (4, 280_000));
}

#[test]
fn wechat_bill_reconciles_with_its_day() {
    let (name, bytes) = receipt_fixture("wechat-20241101.csv");
    let file = parse_bytes(&name, &bytes, &Format::WechatBill { channel: "wechat".into() }).expect("bill");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(("2024-11-01", "2024-11-01"), 3));
    let f = "wechat-20241101.csv";
    let mut expected = vec![
        finding("matched_by_reference", Side::Payment, &[format!("{f}:line 2")], &["WX20241101083015002@45"]),
        finding("matched_by_reference", Side::Payment, &[format!("{f}:line 3")], &["WX20241101101122003@46"]),
        finding("matched_by_reference", Side::Payment, &[format!("{f}:line 4")], &["WX20241101120000777@24"]),
        finding("matched_by_reference", Side::Payment, &[format!("{f}:line 5")], &["WX20241101154530004@47"]),
        finding("matched_by_reference", Side::Refund, &[format!("{f}:line 6")], &["WXTK20241101163000001@48"]),
    ];
    expected.sort();
    assert_eq!(plains(&report.findings), expected);
}

#[test]
fn gbk_csv_reconciles_and_channels_must_agree() {
    let mapping = read_mapping(&fixtures_dir().join("receipts/nongxin.toml")).expect("mapping");
    let path = fixtures_dir().join("receipts/nongxin-20241108-20241112.csv");
    let file = parse_path(&path, &Format::Csv(Box::new(mapping.clone()))).expect("csv");
    let ledger = ledger_items();
    let window = options(("2024-11-08", "2024-11-12"), 3);
    let report = reconcile(&file.statements, &ledger, &window);
    let summary = summarize(&report);
    assert!(summary.is_clean());
    assert_eq!(summary.ledger(Side::Payment), (3, 120_000));
    assert_eq!(summary.ledger(Side::Refund), (1, 40_000));

    let mut alipay = mapping;
    alipay.channel = reconcile::ChannelSource::Fixed("alipay".into());
    let file = parse_path(&path, &Format::Csv(Box::new(alipay))).expect("csv");
    let report = reconcile(&file.statements, &ledger, &window);
    assert_eq!(of_kind(&report.findings, "receipt_only").len(), 4);
    assert_eq!(of_kind(&report.findings, "ledger_only").len(), 4);
}

#[test]
fn a_refund_receipt_without_its_own_reference_matches_by_the_payment_it_returns() {
    let text = receipt_text("camt053-clean.xml")
        .replace("<EndToEndId>TK-2024-11-0005</EndToEndId>", "<EndToEndId>QXG-DS-2024-0931</EndToEndId>");
    let file = camt_text("r.xml", &text);
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(AUTUMN, 0));
    assert!(summarize(&report).is_clean());
    let refund =
        report.findings.iter().find(|f| f.receipts.iter().any(|r| r.source() == entry("r.xml", 12))).expect("entry 12");
    assert_eq!(refund.ledger[0].channel_ref, "TK-2024-11-0005");
}

#[test]
fn the_recorded_event_accounts_for_everything() {
    let file = camt("camt053-breaks.xml");
    let ledger = ledger_items();
    let report = reconcile(&file.statements, &ledger, &options(AUTUMN, 3));
    let summary = summarize(&report);
    let period = report.period.expect("a period");
    let event =
        reconciliation_recorded("run-1", std::slice::from_ref(&file), period, 52, &[7u8; 32], &summary).expect("event");
    assert_eq!(event.files.len(), 1);
    assert_eq!(event.files[0].name, "camt053-breaks.xml");
    assert_eq!(event.files[0].format, "camt.053");
    let (_, bytes) = receipt_fixture("camt053-breaks.xml");
    assert_eq!(event.files[0].sm3, hex::encode(ledger::envelope::sm3(&bytes)));
    assert_eq!((event.period_from, event.period_to), (period.from, period.to));
    assert!(ledger::Event::ReconciliationRecordedV1(event.clone()).validate().is_ok());

    let total = |prefix: &str| -> (u64, i64) {
        event
            .results
            .iter()
            .filter(|r| r.kind.starts_with(prefix))
            .fold((0, 0), |(n, fen), r| (n + r.count, fen + r.total.fen()))
    };
    assert_eq!(total("receipts."), (13, 758_000));
    assert_eq!(total("ledger."), (18, 720_000));
    let kinds: Vec<(&str, u64, i64)> =
        event.results.iter().map(|r| (r.kind.as_str(), r.count, r.total.fen())).collect();
    assert!(kinds.contains(&("receipts.amount_mismatch.payment", 1, 38_000)));
    assert!(kinds.contains(&("ledger.amount_mismatch.payment", 1, 40_000)));
    assert!(kinds.contains(&("receipts.duplicate_receipt.payment", 1, 40_000)));
    assert!(kinds.contains(&("ledger.ledger_only.payment", 1, 40_000)));
    assert!(kinds.contains(&("receipts.matched_by_reference.refund", 3, 120_000)));
}
