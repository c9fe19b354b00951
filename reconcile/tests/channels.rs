//! The files offices receive from channels and banks, each read from its
//! fixture (by content: no format named) and reconciled against the ledger
//! side; containers, failed debits, refused files.

mod common;

use common::{ledger_items, period, receipt_fixture};
use reconcile::{
    detect_format, parse_bytes, reconcile, summarize, Format, LedgerPayment, MatchOptions, ParsedFile, ReconcileError,
    Side,
};
use std::io::Write;

/// Parses a fixture as its content says.
fn read(fixture: &str, channel: Option<&str>) -> Result<ParsedFile, ReconcileError> {
    let (name, bytes) = receipt_fixture(fixture);
    let format = detect_format(&name, &bytes, None, channel)?;
    parse_bytes(&name, &bytes, &format)
}

/// Every receipt matched and every ledger item of the period (and channel)
/// matched too; returns the number of receipts.
fn assert_clean(files: &[ParsedFile], from: &str, to: &str, channel: Option<&str>) -> usize {
    let mut ledger = ledger_items();
    if let Some(channel) = channel {
        ledger = reconcile::ledger_side::of_channel(ledger, channel);
    }
    let options = MatchOptions { tolerance_days: 3, period: Some(period(from, to)) };
    let report = reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let breaks: Vec<String> =
        report.findings.iter().filter(|f| f.kind.is_break()).map(|f| format!("{:?}", common::plain(f))).collect();
    assert!(breaks.is_empty(), "breaks: {breaks:#?}");
    assert!(summarize(&report).is_clean());
    files.iter().flat_map(|f| &f.statements).map(|s| s.receipts.len()).sum()
}

#[test]
fn wechat_success_and_gzipped_refund_bills_reconcile_the_day() {
    let success = read("wechat-success-20241101.csv", None).expect("SUCCESS bill");
    let refund = read("wechat-refund-20241101.csv.gz", None).expect("gzipped REFUND bill");
    assert_eq!((success.format, refund.format), ("wechat-bill", "wechat-bill"));
    let refund_receipt = &refund.statements[0].receipts[0];
    assert_eq!(refund_receipt.side(), Side::Refund);
    assert_eq!(refund_receipt.reference.as_deref(), Some("WXTK20241101163000001"));
    assert_eq!(refund_receipt.original_reference.as_deref(), Some("WX20241101101122003"));
    let n = assert_clean(&[success, refund], "2024-11-01", "2024-11-01", Some("wechat"));
    assert_eq!(n, 5);
}

#[test]
fn a_success_bill_with_a_refund_row_names_the_field() {
    let (_, bytes) = receipt_fixture("wechat-success-20241101.csv");
    let text = String::from_utf8(bytes).expect("UTF-8").replacen("`SUCCESS", "`REFUND", 1);
    let format = Format::WechatBill { channel: "wechat".into() };
    let error = parse_bytes("bill.csv", text.as_bytes(), &format).expect_err("a refund without refund columns");
    let message = error.to_string();
    assert!(message.starts_with("bill.csv: line 2, field `交易状态`: expected SUCCESS"), "{message}");
    assert!(message.contains("no `微信退款单号` column"), "{message}");
}

#[test]
fn the_fund_flow_bill_is_refused_saying_which_bill_to_download() {
    let error = read("wechat-fund-flow-20241101.csv", None).expect_err("fund flow");
    let message = error.to_string();
    assert!(message.contains("WeChat Pay fund-flow bill (资金账单)"), "{message}");
    assert!(message.contains("download the trade bill (交易账单"), "{message}");
    let (name, bytes) = receipt_fixture("wechat-fund-flow-20241101.csv");
    let named = parse_bytes(&name, &bytes, &Format::WechatBill { channel: "wechat".into() }).expect_err("named");
    assert!(named.to_string().contains("line 1: this is a WeChat Pay fund-flow bill"), "{named}");
}

#[test]
fn an_alipay_zip_reads_its_detail_and_checks_its_summary() {
    let bill = read("alipay-20241025.zip", None).expect("Alipay zip");
    assert_eq!(bill.format, "alipay-bill");
    let statement = &bill.statements[0];
    assert!(statement.file.ends_with("alipay-20241025.zip!20881234567890120156_20241025_业务明细.csv"));
    assert_eq!(statement.account.as_deref(), Some("20881234567890120156"));
    let receipt = &statement.receipts[0];
    assert_eq!(receipt.reference.as_deref(), Some("AP2024102514300018"));
    assert_eq!(receipt.payer_id.as_deref(), Some("520525199311116279"));
    let totals: Vec<(&str, i128, i128)> =
        statement.control_totals.iter().map(|t| (t.what.as_str(), t.declared, t.computed)).collect();
    assert!(totals.contains(&("交易合计 商家实收", 40_000, 40_000)), "{totals:?}");
    assert!(totals.iter().any(|(what, declared, _)| what.ends_with("交易订单总笔数") && *declared == 1), "{totals:?}");
    assert_clean(std::slice::from_ref(&bill), "2024-10-25", "2024-10-25", Some("alipay"));
}

/// An Alipay detail file as GBK text, with rows given as
/// `(alipay_no, order, kind, amount, refund_request)`.
fn alipay_text(rows: &[(&str, &str, &str, &str, &str)], footer: &str) -> Vec<u8> {
    let mut text = String::from("#支付宝业务明细查询\n#账号：[2088]\n#----业务明细列表----\n");
    text.push_str("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,订单金额（元）,商家实收（元）,退款批次号/请求号,备注\n");
    for (alipay_no, order, kind, amount, request) in rows {
        text.push_str(&format!(
            "{alipay_no}\t,{order}\t,{kind}\t,医保\t,2025-04-10 15:59:00\t,2025-04-10 16:00:00\t,{amount}\t,{amount}\t,{request}\t,\t\n"
        ));
    }
    text.push_str(footer);
    encoding_rs::GBK.encode(&text).0.into_owned()
}

#[test]
fn alipay_refund_rows_are_debits_and_a_cut_bill_is_refused() {
    let rows = [
        ("2025041022001", "AP2025041016000042", "交易", "1070.00", ""),
        ("2025041022001", "AP2025041016000042", "退款", "-1070.00", "APTK001"),
    ];
    let footer = "#----业务明细列表结束----\n#交易合计：1笔，商家实收共：1070.00元\n#退款合计：1笔，商家实收退款共：-1070.00元\n";
    let bytes = alipay_text(&rows, footer);
    let format = Format::AlipayBill { channel: "alipay".into() };
    let bill = parse_bytes("alipay.csv", &bytes, &format).expect("bill");
    let refund = &bill.statements[0].receipts[1];
    assert_eq!((refund.side(), refund.amount.fen()), (Side::Refund, 107_000));
    assert_eq!(refund.reference.as_deref(), Some("APTK001"));
    assert_eq!(refund.original_reference.as_deref(), Some("AP2025041016000042"));
    assert!(bill.statements[0].control_totals.iter().all(|t| t.declared == t.computed));
    let cut = alipay_text(&rows[..1], "");
    let error = parse_bytes("alipay.csv", &cut, &format).expect_err("cut");
    assert!(error.to_string().contains("the bill ends early"), "{error}");
}

#[test]
fn a_camt054_notification_reads_as_a_statement_without_balances() {
    let notification = read("camt054-20241015-20241020.xml", None).expect("camt.054");
    assert_eq!(notification.format, "camt.054");
    assert!(notification.statements[0].balances.is_none());
    assert_eq!(assert_clean(std::slice::from_ref(&notification), "2024-10-15", "2024-10-20", None), 2);
}

#[test]
fn an_mt940_statement_reconciles_its_credits_and_refund() {
    let statement = read("mt940-20241108-20241112.sta", None).expect("MT940");
    assert_eq!(statement.format, "mt940");
    let receipts = &statement.statements[0].receipts;
    assert_eq!(receipts[0].payer_id.as_deref(), Some("520521195704122756"));
    assert_eq!(receipts[3].side(), Side::Refund);
    assert!(reconcile::check_statement(&statement.statements[0]).is_empty(), "balances add up");
    assert_eq!(assert_clean(std::slice::from_ref(&statement), "2024-11-08", "2024-11-12", None), 4);
}

#[test]
fn mt940_errors_name_line_and_tag() {
    let (_, bytes) = receipt_fixture("mt940-20241108-20241112.sta");
    let text =
        String::from_utf8(bytes).expect("UTF-8").replace(":61:2411081108C400,00NTRFNX20241108000102", ":61:2411X");
    let error = parse_bytes("s.sta", text.as_bytes(), &Format::Mt940 { channel: None }).expect_err("bad :61:");
    assert!(error.to_string().starts_with("s.sta: line 8, field `:61:`: expected an entry"), "{error}");
    let cut = ":20:X\n:25:1\n:60F:C241107CNY1,00\n:61:2411081108C400,00NTRFA\n";
    let error = parse_bytes("s.sta", cut.as_bytes(), &Format::Mt940 { channel: None }).expect_err("cut");
    assert!(error.to_string().contains("the statement ends early"), "{error}");
}

#[test]
fn a_batch_return_counts_only_successful_debits_and_lists_the_failed() {
    let run = read("rural-credit-return-20241108.txt", None).expect("batch return");
    assert_eq!(run.format, "batch-return");
    let references: Vec<&str> = run.statements[0].receipts.iter().filter_map(|r| r.reference.as_deref()).collect();
    assert_eq!(references, ["NX20241108000101", "NX20241108000102", "NX20241108000103"]);
    assert_eq!(run.statements[0].not_received.len(), 1);
    let failed = run.statements[0].not_received[0].to_string();
    assert!(failed.contains("rural-credit-return-20241108.txt:line 5 NX20241108000104 400.00 failed with code 1001"));
    assert!(failed.contains("账户余额不足"), "{failed}");
    assert_eq!(assert_clean(std::slice::from_ref(&run), "2024-11-08", "2024-11-08", Some("guizhou_rural_credit")), 3);
}

#[test]
fn a_failed_debit_recorded_as_paid_is_a_break() {
    let run = read("rural-credit-return-20241108.txt", None).expect("batch return");
    let mut ledger = reconcile::ledger_side::of_channel(ledger_items(), "guizhou_rural_credit");
    let mut paid = ledger[0].clone();
    paid.position = 99;
    paid.channel_ref = "NX20241108000104".into();
    paid.person = "520502197803042110".into();
    ledger.push(paid);
    let options = MatchOptions { tolerance_days: 3, period: Some(period("2024-11-08", "2024-11-08")) };
    let report = reconcile(&run.statements, &ledger, &options);
    let breaks: Vec<&str> = report.findings.iter().filter(|f| f.kind.is_break()).map(|f| f.kind.name()).collect();
    assert_eq!(breaks, ["ledger_only"]);
}

#[test]
fn a_batch_return_whose_trailer_does_not_add_up_is_refused_naming_line_and_field() {
    let (name, bytes) = receipt_fixture("rural-credit-return-20241108.txt");
    let format = detect_format(&name, &bytes, None, None).expect("format");
    let changed = String::from_utf8_lossy(&bytes).replace("T|4|1600.00|3|1200.00", "T|4|1600.00|4|1600.00");
    let encoded = encoding_rs::GBK.encode(&changed).0.into_owned();
    let error = parse_bytes(&name, &encoded, &format).expect_err("trailer mismatch");
    assert!(matches!(error, ReconcileError::Invalid { .. }), "{error:?}");
    let message = error.to_string();
    assert_eq!(
        message,
        "rural-credit-return-20241108.txt: line 6, field `success_count`: expected 3 (records), found `4`"
    );
    let no_trailer = bytes[..bytes.len() - "T|4|1600.00|3|1200.00|1|400.00\r\n".len()].to_vec();
    let error = parse_bytes(&name, &no_trailer, &format).expect_err("no trailer");
    assert!(error.to_string().contains("without its trailer record"), "{error}");
}

#[test]
fn the_shipped_layout_reads_fixed_width_records_too() {
    let layout = r#"
        kind = "batch-return"
        name = "fixed"
        encoding = "gbk"
        channel = "guizhou_rural_credit"
        record_type = { start = 1, length = 1 }
        header_type = "H"
        detail_type = "D"
        trailer_type = "T"
        amount_unit = "fen"
        date_format = "%Y%m%d"
        success_codes = ["00"]
        [detail]
        reference = { start = 2, length = 16 }
        amount = { start = 18, length = 10 }
        result = { start = 28, length = 2 }
        [header]
        date = { start = 2, length = 8 }
        [trailer]
        count = { start = 2, length = 4 }
        total = { start = 6, length = 10 }
    "#;
    let misplaced = layout.replace("reference = { start = 2, length = 16 }", "reference = 2");
    let error = reconcile::Layout::from_toml("fixed.toml", &misplaced).expect_err("a column without a delimiter");
    assert!(error.to_string().contains("detail.reference: expected { start, length } from 1"), "{error}");
    let layout = reconcile::Layout::from_toml("fixed.toml", layout).expect("layout");
    let text = "H20241108\nDNX20241108000101000004000000\nDNX20241108000104000004000051\nT00020000080000\n";
    let run = reconcile::parse_batch_return("f.txt", text.as_bytes(), &layout).expect("fixed width");
    assert_eq!(run.receipts.len(), 1);
    assert_eq!(run.receipts[0].booked_on, common::date("2024-11-08"), "the header's date");
    assert_eq!(run.not_received.len(), 1);
    assert_eq!(run.not_received[0].status, "failed with code 51");
    assert_eq!(run.not_received[0].receipt.booked_on, common::date("2024-11-08"), "a failed debit is dated too");
}

/// A zip of deflated entries; `claimed_size` overrides the uncompressed
/// size its headers state (a zip bomb lies about it).
fn zip_of(entries: &[(&str, &[u8])], claimed_size: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, content) in entries {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(content).expect("deflate");
        let data = encoder.finish().expect("deflate");
        let mut crc = flate2::Crc::new();
        crc.update(content);
        let size = claimed_size.unwrap_or(content.len() as u32);
        let offset = out.len() as u32;
        let common = |buffer: &mut Vec<u8>| {
            buffer.extend_from_slice(&20u16.to_le_bytes()); // version needed
            buffer.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            buffer.extend_from_slice(&8u16.to_le_bytes()); // deflate
            buffer.extend_from_slice(&[0; 4]); // time, date
            buffer.extend_from_slice(&crc.sum().to_le_bytes());
            buffer.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&size.to_le_bytes());
            buffer.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buffer.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(b"PK\x03\x04");
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);
        directory.extend_from_slice(b"PK\x01\x02");
        directory.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut directory);
        directory.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        directory.extend_from_slice(&[0; 4]); // external attributes
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let directory_offset = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn a_zip_of_one_bill_reads_as_the_bill() {
    let (_, bill) = receipt_fixture("wechat-20241101.csv");
    let zip = zip_of(&[("wechat-20241101.csv", &bill)], None);
    let format = detect_format("bill.zip", &zip, None, None).expect("detected inside the zip");
    assert_eq!(format, Format::WechatBill { channel: "wechat".into() });
    let parsed = parse_bytes("bill.zip", &zip, &format).expect("bill");
    assert_eq!(parsed.statements[0].receipts.len(), 5);
    assert_eq!(&*parsed.statements[0].receipts[0].file, "bill.zip!wechat-20241101.csv");
    assert_eq!(parsed.sm3, ledger::envelope::sm3(&zip), "the digest is of the file as received");
    let two = zip_of(&[("a.csv", &bill), ("b.csv", &bill)], None);
    let error = detect_format("two.zip", &two, None, None).expect_err("two bills");
    assert!(error.to_string().contains("expected a zip of one receipt file"), "{error}");
}

#[test]
fn an_entry_inflating_past_the_limit_is_refused() {
    let zeros = vec![0u8; 1 << 20];
    // Its headers claim 100 bytes; it inflates to a mebibyte.
    let bomb = zip_of(&[("bill.csv", &zeros)], Some(100));
    let error = reconcile::unpack_within("bomb.zip", &bomb, 64 * 1024).expect_err("bomb");
    assert_eq!(error.to_string(), "bomb.zip: whole file: decompressed size in bytes exceeds the limit of 65536");
    let honest = zip_of(&[("bill.csv", &zeros)], None);
    let error = reconcile::unpack_within("big.zip", &honest, 64 * 1024).expect_err("declared too large");
    assert!(matches!(error, ReconcileError::Limit { .. }), "{error:?}");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&zeros).expect("gzip");
    let gzip = gzip.finish().expect("gzip");
    let error = reconcile::unpack_within("bomb.csv.gz", &gzip, 64 * 1024).expect_err("gzip bomb");
    assert!(matches!(error, ReconcileError::Limit { .. }), "{error:?}");
}

#[test]
fn only_the_named_channels_payments_are_the_ledger_side() {
    let items: Vec<LedgerPayment> = ledger_items();
    let wechat = reconcile::ledger_side::of_channel(items.clone(), "wechat");
    assert!(!wechat.is_empty() && wechat.iter().all(|item| item.channel == "wechat"));
    assert!(wechat.len() < items.len());
}
