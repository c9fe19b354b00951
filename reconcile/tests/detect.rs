//! Receipt files judged by their content, and reconciliation runs
//! identified by what they compared, never by file names.

mod common;

use common::{ledger_items, period, receipt_fixture};
use reconcile::{
    detect, detect_format, parse_bytes, reconcile, run_id, summarize, Detected, Format, MatchOptions, ParsedFile,
    RunDefinition,
};

#[test]
fn files_are_judged_by_their_content() {
    let gbk_alipay = encoding_rs::GBK.encode("#支付宝业务明细查询\n#账号：[2088]\n").0.into_owned();
    let rural_credit_return = encoding_rs::GBK
        .encode("H|B1|5205|20241108|1|400.00\nD|1|NX1|62|吴|X|400.00|20241108|0000|成功\nT|1|400.00|1|400.00|0|0.00\n")
        .0
        .into_owned();
    let cases: [(&[u8], Detected); 19] = [
        (b"", Detected::Empty),
        (b" \r\n\t", Detected::Empty),
        (b"<?xml version=\"1.0\"?><Document/>", Detected::Xml),
        (b"\xEF\xBB\xBF\n  <ns2:Document xmlns:ns2=\"x\"/>", Detected::Xml),
        (b"<!DOCTYPE html><html><body>login</body></html>", Detected::Unread("HTML")),
        (b":20:STMT1\n:25:123\n:28C:1/1\n:60F:C241001CNY1,00\n:62F:C241001CNY1,00\n-", Detected::Mt940),
        (b"{1:F01BANKCNBJAXXX0000000000}{2:O9401200241130BANKCNBJAXXX}{4:\n:20:X\n:60F:C2410", Detected::Mt940),
        (b"{1:F01BANKCNBJAXXX0000000000}{4:\n:20:X\n:21:Y\n-}", Detected::Unread("a SWIFT MT message")),
        (b"%PDF-1.7\n", Detected::Unread("PDF")),
        (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0", Detected::Workbook("an Excel 97-2003 workbook (XLS)")),
        (b"PK\x03\x04\x14\0\0\0[Content_Types].xml....xl/workbook.xml", Detected::Workbook("an Excel workbook (XLSX)")),
        (b"PK\x03\x04\x14\0\0\0statement.csv", Detected::Unread("a zip archive")),
        (b"\x1F\x8B\x08\0", Detected::Unread("gzip-compressed data")),
        ("交易时间,公众账号ID,商户号,微信订单号,商户订单号\n".as_bytes(), Detected::WechatBill),
        ("交易时间,公众账号ID,商户号,商户订单号,交易状态,退款申请时间,微信订单号\n".as_bytes(), Detected::WechatBill),
        (&gbk_alipay, Detected::AlipayBill),
        ("#支付宝业务明细查询\n".as_bytes(), Detected::AlipayBill),
        (&rural_credit_return, Detected::BatchReturn("rural-credit-return")),
        (
            "记账时间,微信支付业务单号,资金流水单号,业务名称\n".as_bytes(),
            Detected::Unread(reconcile::wechat::FUND_FLOW_REFUSAL),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(detect(bytes), expected, "{}", String::from_utf8_lossy(bytes));
    }
    assert_eq!(detect(b"date;amount\n2024-11-01;400.00\n"), Detected::Text { delimited: true });
    assert_eq!(detect(b"just words\n"), Detected::Text { delimited: false });
    assert_eq!(detect(b"a\0b"), Detected::Unread("binary data"));
}

#[test]
fn an_unread_file_names_what_it_looks_like_and_the_formats_read() {
    let formats = format!("formats read: {}", reconcile::FORMATS_READ);
    let mt103 = b"{1:F01BANKCNBJAXXX0000000000}{4:\n:20:X\n:21:Y\n-}";
    let error = detect_format("x.xml", mt103, None, None).map(|_| ()).expect_err("MT103");
    assert_eq!(
        error.to_string(),
        format!("x.xml: not a format yibao reads (looks like a SWIFT MT message); {formats}")
    );
    let error = detect_format("x.csv", b"a,b\n1,2\n", None, None).map(|_| ()).expect_err("plain CSV");
    assert_eq!(
        error.to_string(),
        format!(
            "x.csv: not a format yibao reads (looks like a CSV file whose first lines are `a,b` / `1,2`; \
             give --mapping FILE or a preset); {formats}"
        )
    );
    let gbk = encoding_rs::GBK.encode("中国工商银行账户明细\n\n凭证号,交易时间,贷方发生额\t\n").0.into_owned();
    let error = detect_format("icbc.csv", &gbk, None, None).map(|_| ()).expect_err("bank CSV");
    assert!(
        error.to_string().contains("first lines are `中国工商银行账户明细` / `凭证号,交易时间,贷方发生额`"),
        "{error}"
    );
    let error = detect_format("x.csv", b"", None, None).map(|_| ()).expect_err("empty");
    assert!(error.to_string().contains("(looks like an empty file)"), "{error}");
    // A file named .csv that holds a statement is read as one.
    let (_, statement) = receipt_fixture("camt053-clean.xml");
    let format = detect_format("statement.csv", &statement, None, Some("bank")).expect("XML");
    assert_eq!(format, Format::Camt053 { channel: Some("bank".into()) });
    let (_, bill) = receipt_fixture("wechat-20241101.csv");
    let format = detect_format("bill.txt", &bill, None, None).expect("bill");
    assert_eq!(format, Format::WechatBill { channel: "wechat".into() });
}

fn parsed(name: &str, fixture: &str) -> ParsedFile {
    let (_, bytes) = receipt_fixture(fixture);
    parse_bytes(name, &bytes, &Format::Camt053 { channel: None }).expect("fixture parses")
}

fn id_of(files: &[ParsedFile], tolerance_days: u32) -> String {
    let ledger = ledger_items();
    let options = MatchOptions { tolerance_days, period: Some(period("2024-10-01", "2024-11-30")) };
    let report = reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let definition = RunDefinition {
        files,
        mapping_sm3: None,
        channel: None,
        period: options.period,
        tolerance_days,
        head_position: 52,
        head_hash: [7; 32],
    };
    run_id(&definition, &summarize(&report)).expect("run id")
}

#[test]
fn a_run_is_identified_by_content_not_file_names() {
    let clean = parsed("camt053-clean.xml", "camt053-clean.xml");
    let renamed = parsed("/elsewhere/copy.xml", "camt053-clean.xml");
    let breaks = parsed("camt053-breaks.xml", "camt053-breaks.xml");
    let id = id_of(std::slice::from_ref(&clean), 3);
    assert!(id.starts_with("reconcile-") && id.len() == "reconcile-".len() + 16, "{id}");
    assert_eq!(id_of(std::slice::from_ref(&renamed), 3), id);
    assert_ne!(id_of(std::slice::from_ref(&breaks), 3), id);
    assert_ne!(id_of(std::slice::from_ref(&clean), 0), id, "another tolerance is another run");
    let both = id_of(&[clean.clone(), breaks.clone()], 3);
    assert_eq!(id_of(&[breaks, clean], 3), both, "the order files are named in is not part of a run");
}
