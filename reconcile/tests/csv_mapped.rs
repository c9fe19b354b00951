//! Generic CSV through a mapping: the GBK fixture, mapping errors, and
//! errors naming line and field.

mod common;

use common::{date, fixtures_dir, receipt_fixture};
use reconcile::{
    check_statement, parse_mapped_csv, read_mapping, ChannelSource, CheckFailure, Direction, Encoding, Location,
    Mapping, ReconcileError,
};

fn nongxin_mapping() -> Mapping {
    read_mapping(&fixtures_dir().join("receipts/nongxin.toml")).expect("fixture mapping")
}

fn mapping(toml: &str) -> Mapping {
    Mapping::from_toml("m.toml", toml).expect("mapping")
}

fn mapping_error(toml: &str) -> String {
    Mapping::from_toml("m.toml", toml).map(|_| ()).expect_err("mapping error").to_string()
}

const SIMPLE: &str = r#"
[columns]
reference = "ref"
amount = "amount"
date = "date"
"#;

fn parse(text: &str, mapping: &Mapping) -> Result<reconcile::Statement, String> {
    parse_mapped_csv("x.csv", text.as_bytes(), mapping).map_err(|e| e.to_string())
}

#[test]
fn gbk_fixture_figures_are_exact() {
    let mapping = nongxin_mapping();
    assert_eq!(mapping.encoding, Encoding::Gbk);
    assert_eq!(mapping.channel, ChannelSource::Fixed("guizhou_rural_credit".into()));
    let (name, bytes) = receipt_fixture("nongxin-20241108-20241112.csv");
    let statement = parse_mapped_csv(&name, &bytes, &mapping).expect("parses");
    type Row<'r> = (Location, &'r str, i64, Direction, Option<&'r str>, Option<&'r str>);
    let rows: Vec<Row<'_>> = statement
        .receipts
        .iter()
        .map(|r| {
            (
                r.at.clone(),
                r.reference.as_deref().unwrap_or(""),
                r.amount.fen(),
                r.direction,
                r.payer_id.as_deref(),
                r.original_reference.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (Location::Line(2), "NX20241108000101", 40_000, Direction::Credit, Some("520521195704122756"), None),
            (Location::Line(3), "NX20241108000102", 40_000, Direction::Credit, Some("520523199908083868"), None),
            (Location::Line(4), "NX20241108000103", 40_000, Direction::Credit, Some("520524200506014976"), None),
            (
                Location::Line(5),
                "NXTK20241112000001",
                40_000,
                Direction::Debit,
                Some("520524200506014976"),
                Some("NX20241108000103")
            ),
        ]
    );
    assert_eq!(statement.receipts[3].booked_on, date("2024-11-12"));
    assert!(statement.receipts.iter().all(|r| r.channel.as_deref() == Some("guizhou_rural_credit")));
    assert_eq!(check_statement(&statement), vec![]);
}

#[test]
fn invalid_gbk_names_its_line() {
    let (_, mut bytes) = receipt_fixture("nongxin-20241108-20241112.csv");
    let third = bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(1).map(|(i, _)| i + 1).expect("lines");
    bytes[third + 1] = 0x81; // a GBK lead byte followed by a digit
    bytes[third + 2] = 0x07; // not a GBK trail byte
    let error = parse_mapped_csv("n.csv", &bytes, &nongxin_mapping()).map(|_| ()).expect_err("bad GBK");
    assert_eq!(error.to_string(), "n.csv: line 3: not valid GBK text");
}

#[test]
fn field_errors_name_line_and_column() {
    let mapping = nongxin_mapping();
    let gbk = |text: &str| encoding_rs::GBK.encode(text).0.into_owned();
    let header = "记账日期,交易时间,交易流水号,原交易流水号,借贷标志,交易金额,缴费人证件号码,缴费人姓名,摘要\n";
    let cases = [
        (
            "20241108,09:12:03,NX1,,贷,400.00,520521195704122757,何志强,x\n",
            "line 2, field `缴费人证件号码`: expected an identity number (GB 11643, other:NUMBER, or masked as 520521********2756), found `520521195704122757`",
        ),
        ("20241108,09:12:03,NX1,,收,400.00,,何志强,x\n", "line 2, field `借贷标志`: expected a direction, one of 贷, 借, found `收`"),
        ("20241108,09:12:03,NX1,,贷,-400.00,,何志强,x\n", "line 2, field `交易金额`: expected an amount in yuan (digits, `.` and at most two decimals), found `-400.00`"),
        ("2024-11-08,09:12:03,NX1,,贷,400.00,,何志强,x\n", "line 2, field `记账日期`: expected a date or date-time in the format `%Y%m%d`, found `2024-11-08`"),
        ("20241108,09:12:03,NX1\n", "line 2, field `交易金额`: expected a value in this column, found `3 fields`"),
    ];
    for (row, expected) in cases {
        let bytes = gbk(&format!("{header}{row}"));
        let error = parse_mapped_csv("n.csv", &bytes, &mapping).map(|_| ()).expect_err(expected).to_string();
        assert_eq!(error, format!("n.csv: {expected}"));
    }
    let bytes = gbk("日期,流水,金额\n");
    let error = parse_mapped_csv("n.csv", &bytes, &mapping).map(|_| ()).expect_err("missing columns").to_string();
    assert_eq!(error, "n.csv: line 1: expected a column named `交易流水号`, found `日期,流水,金额`");
}

#[test]
fn sign_gives_direction_without_a_direction_column() {
    let statement = parse("ref,amount,date\nA1,12.50,2024-11-08\nA2,-3.05,2024-11-09 10:00:00\n", &mapping(SIMPLE))
        .expect("parses");
    let rows: Vec<(i64, Direction)> = statement.receipts.iter().map(|r| (r.amount.fen(), r.direction)).collect();
    assert_eq!(rows, vec![(1250, Direction::Credit), (305, Direction::Debit)]);
    assert!(statement.receipts[0].channel.is_none());
}

#[test]
fn decimal_comma_semicolon_delimiter_and_numbered_columns() {
    let m = mapping(
        r#"
header = false
delimiter = ";"
decimal_separator = ","
channel = "alipay"
[columns]
reference = 2
amount = 3
date = 1
"#,
    );
    let statement = parse("2024-10-25;AP2024102514300018;400,00\n\n2024-10-26;AP2;1070,5\n", &m).expect("parses");
    let rows: Vec<(Location, i64)> = statement.receipts.iter().map(|r| (r.at.clone(), r.amount.fen())).collect();
    assert_eq!(rows, vec![(Location::Line(1), 40_000), (Location::Line(3), 107_050)]);
    assert_eq!(statement.receipts[1].channel.as_deref(), Some("alipay"));
    let error = parse("2024-10-25;AP1;400.00\n", &m).map(|_| ()).expect_err("dot");
    assert_eq!(error, "x.csv: line 1, field `column 3`: expected an amount in yuan (an optional sign, digits, `,` and at most two decimals), found `400.00`");
}

#[test]
fn settlement_groups_are_one_receipt_with_parts() {
    let m = mapping(
        r#"
channel = "village_collector"
[columns]
reference = "单号"
amount = "金额"
date = "日期"
settlement_ref = "交款批次"
settlement_total = "批次金额"
"#,
    );
    let text = "单号,金额,日期,交款批次,批次金额\n\
                QXG-DS-2024-0931,400.00,2024-11-02,HJ-1105,1200.00\n\
                X-1,50.00,2024-11-03,,\n\
                QXG-DS-2024-0932,400.00,2024-11-02,HJ-1105,1200.00\n\
                QXG-DS-2024-0933,400.00,2024-11-03,HJ-1105,1200.00\n";
    let statement = parse(text, &m).expect("parses");
    assert_eq!(statement.receipts.len(), 2);
    let batch = &statement.receipts[0];
    assert_eq!((batch.reference.as_deref(), batch.amount.fen(), batch.parts.len()), (Some("HJ-1105"), 120_000, 3));
    assert_eq!(batch.booked_on, date("2024-11-03"));
    assert_eq!(batch.parts[2].at, Location::Line(5));
    assert_eq!(check_statement(&statement), vec![]);

    let short = text.replace("QXG-DS-2024-0933,400.00", "QXG-DS-2024-0933,300.00");
    let failures = check_statement(&parse(&short, &m).expect("parses"));
    assert!(
        matches!(failures.as_slice(), [CheckFailure::ControlTotal(t)] if t.declared == 120_000 && t.computed == 110_000)
    );
    assert_eq!(
        failures[0].to_string(),
        "line 2: settlement HJ-1105 total against its rows declares 1200.00, the detail adds up to 1100.00"
    );

    let disagree = text.replace(
        "QXG-DS-2024-0932,400.00,2024-11-02,HJ-1105,1200.00",
        "QXG-DS-2024-0932,400.00,2024-11-02,HJ-1105,1300.00",
    );
    assert_eq!(
        parse(&disagree, &m).map(|_| ()).expect_err("totals disagree"),
        "x.csv: line 4: expected the settlement total given on line 2 (1200.00), found `1300.00`"
    );
}

#[test]
fn mapping_errors() {
    assert!(mapping_error("[columns]\nreference = \"r\"\n").starts_with("mapping m.toml: "));
    assert!(mapping_error(&format!("encoding = \"latin1\"\n{SIMPLE}"))
        .contains("encoding: expected utf-8 or gbk, found `latin1`"));
    assert!(mapping_error(&format!("decimal_separator = \"'\"\n{SIMPLE}"))
        .contains("decimal_separator: expected `.` or `,`"));
    assert!(
        mapping_error(&format!("delimiter = \"ab\"\n{SIMPLE}")).contains("delimiter: expected one ASCII punctuation")
    );
    assert!(mapping_error(&format!("header = false\n{SIMPLE}"))
        .contains("columns.reference: a file without a header row names columns by number"));
    assert!(mapping_error(&format!("{SIMPLE}direction = \"d\"\n")).contains("columns.direction needs [direction]"));
    assert!(mapping_error(&format!("channel = \"a\"\n{SIMPLE}channel = \"c\"\n"))
        .contains("either channel or columns.channel"));
    assert!(mapping_error(&format!("date_format = \"%Q\"\n{SIMPLE}")).contains("date_format: not a chrono format"));
    assert!(mapping_error(&format!("{SIMPLE}colour = \"x\"\n")).contains("unknown field"));
    assert!(mapping_error("[columns]\nreference = 0\namount = 1\ndate = 2\n").contains("column numbers start at 1"));
    let missing = read_mapping(std::path::Path::new("/nonexistent/m.toml")).map(|_| ()).expect_err("no file");
    assert!(matches!(missing, ReconcileError::Io { .. }));
}
