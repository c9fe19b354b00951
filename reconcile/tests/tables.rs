//! Tables as offices receive them: bank statements and tax-bureau exports
//! in CSV (GBK, title lines, footers, thousands separators, 收入/支出
//! columns, masked IDs, status columns) read through the shipped presets,
//! and each reconciled against a small ledger side.

mod common;

use common::{date, receipt_fixture};
use reconcile::{
    parse_bytes, parse_mapped_csv, preset, reconcile, summarize, Definition, Direction, Format, LedgerPayment, Mapping,
    MatchOptions, Side, Statement, PRESETS,
};

const ID1: &str = "520502198503121233";
const ID2: &str = "520523199908083868";
const ID3: &str = "520524200506014976";

fn payment(position: u64, channel: &str, reference: &str, yuan: &str, person: &str, day: &str) -> LedgerPayment {
    LedgerPayment {
        position,
        kind: Side::Payment,
        channel: channel.into(),
        channel_ref: reference.into(),
        refund_of: None,
        amount: yuan.parse().expect("amount"),
        person: person.into(),
        payer: None,
        business_date: date(day),
    }
}

/// Result kinds with their sides and receipt counts, sorted, and whether
/// every receipt and every ledger item is in exactly one finding.
fn outcome(statement: &Statement, ledger: &[LedgerPayment]) -> Vec<(String, Side, usize, usize)> {
    let report = reconcile([statement], ledger, &MatchOptions::default());
    let n_receipts: usize = report.findings.iter().map(|f| f.receipts.len()).sum();
    let n_ledger: usize = report.findings.iter().map(|f| f.ledger.len()).sum();
    assert_eq!(n_receipts, statement.receipts.len() + statement.not_received.len(), "every receipt accounted for");
    assert_eq!(n_ledger, ledger.len(), "every ledger item accounted for");
    let summary = summarize(&report);
    let mut rows: Vec<(String, Side, usize, usize)> = summary
        .rows
        .iter()
        .map(|row| (row.kind.to_string(), row.side, row.n_receipts as usize, row.n_ledger as usize))
        .collect();
    rows.sort();
    rows
}

fn preset_mapping(name: &str) -> Mapping {
    let mapping = preset(name).and_then(|preset| preset.mapping());
    mapping.unwrap_or_else(|| panic!("preset {name}")).expect("preset mapping")
}

/// The bank statements: a payment of 1,200.00 named by reference, one of
/// 400.00 whose payer writes an ID number in the transfer's purpose, a
/// fee paid out, and a recorded payment the bank never saw.
fn bank_ledger(prefix: &str) -> Vec<LedgerPayment> {
    vec![
        payment(1, "bank", &format!("{prefix}0001"), "1200.00", ID1, "2024-11-05"),
        payment(2, "bank", "APP-20241106-77", "400.00", ID2, "2024-11-06"),
        payment(3, "bank", "APP-20241107-78", "400.00", ID3, "2024-11-07"),
    ]
}

fn bank_outcome() -> Vec<(String, Side, usize, usize)> {
    let mut expected = vec![
        ("matched_by_reference".to_string(), Side::Payment, 1, 1),
        ("matched_by_amount_payer_date".to_string(), Side::Payment, 1, 1),
        ("receipt_only".to_string(), Side::Refund, 1, 0),
        ("ledger_only".to_string(), Side::Payment, 0, 1),
    ];
    expected.sort();
    expected
}

#[test]
fn every_bank_preset_reads_its_statement_and_reconciles_it() {
    let banks = [
        ("icbc", "ICBC", "icbc-20241101-20241130.csv"),
        ("ccb", "CCB", "ccb-20241101-20241130.csv"),
        ("abc", "ABC", "abc-20241101-20241130.csv"),
        ("boc", "BOC", "boc-20241101-20241130.csv"),
        ("bocom", "BOCOM", "bocom-20241101-20241130.csv"),
        ("cmb", "CMB", "cmb-20241101-20241130.csv"),
    ];
    for (name, prefix, fixture) in banks {
        let (file, bytes) = receipt_fixture(fixture);
        let statement = parse_mapped_csv(&file, &bytes, &preset_mapping(name)).unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, i64, Direction, Option<&str>, String)> = statement
            .receipts
            .iter()
            .map(|r| {
                let reference = r.reference.clone().unwrap_or_default();
                (reference, r.amount.fen(), r.direction, r.payer_id.as_deref(), r.booked_on.to_string())
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (format!("{prefix}0001"), 120_000, Direction::Credit, Some(ID1), "2024-11-05".to_string()),
                (format!("{prefix}0002"), 40_000, Direction::Credit, Some(ID2), "2024-11-06".to_string()),
                (format!("{prefix}0003"), 1_500, Direction::Debit, None, "2024-11-07".to_string()),
            ],
            "{name}"
        );
        assert_eq!(outcome(&statement, &bank_ledger(prefix)), bank_outcome(), "{name}");
    }
}

#[test]
fn the_tax_export_lists_voided_tickets_and_never_keys_on_a_masked_id() {
    let (file, bytes) = receipt_fixture("tax-20241101-20241130.csv");
    let statement = parse_mapped_csv(&file, &bytes, &preset_mapping("tax")).unwrap_or_else(|e| panic!("{e}"));
    let payers: Vec<Option<&str>> = statement.receipts.iter().map(|r| r.payer_id.as_deref()).collect();
    assert_eq!(payers, vec![Some("520502********1233"), Some("520523********3868"), Some("520502********1233")]);
    assert_eq!(statement.not_received.len(), 1);
    assert_eq!(statement.not_received[0].receipt.reference.as_deref(), Some("352024110600000003"));
    let ledger = vec![
        payment(1, "tax", "352024110500000001", "1200.00", ID1, "2024-11-05"),
        payment(2, "tax", "352024110600000002", "400.00", ID2, "2024-11-06"),
        // The person, amount and day of ticket 4, under another reference:
        // a masked ID must not make it a match.
        payment(3, "tax", "352024110799999999", "400.00", ID1, "2024-11-07"),
    ];
    let mut expected = vec![
        ("matched_by_reference".to_string(), Side::Payment, 2, 2),
        ("not_received".to_string(), Side::Payment, 1, 0),
        ("receipt_only".to_string(), Side::Payment, 1, 0),
        ("ledger_only".to_string(), Side::Payment, 0, 1),
    ];
    expected.sort();
    assert_eq!(outcome(&statement, &ledger), expected);
}

#[test]
fn a_masked_id_matches_only_with_the_registered_name_amount_and_date() {
    let (file, bytes) = receipt_fixture("tax-20241101-20241130.csv");
    let statement = parse_mapped_csv(&file, &bytes, &preset_mapping("tax")).expect("parses");
    let names_of: Vec<Option<&str>> = statement.receipts.iter().map(|r| r.payer_name.as_deref()).collect();
    assert_eq!(names_of, vec![Some("王芳"), Some("高婷"), Some("王芳")]);
    let ledger = |second_person: Option<&str>| {
        let mut items = vec![
            payment(1, "tax", "352024110500000001", "1200.00", ID1, "2024-11-05"),
            payment(2, "tax", "352024110600000002", "400.00", ID2, "2024-11-06"),
            payment(3, "tax", "352024110799999999", "400.00", ID1, "2024-11-08"),
        ];
        if let Some(person) = second_person {
            items.push(payment(4, "tax", "352024110799999998", "400.00", person, "2024-11-07"));
        }
        items
    };
    let kinds = |ledger: &[LedgerPayment], names: &reconcile::Names| -> Vec<(String, Vec<u64>)> {
        let report = reconcile::reconcile_with_names([&statement], ledger, &MatchOptions::default(), names);
        let mut kinds: Vec<(String, Vec<u64>)> = report
            .findings
            .iter()
            .filter(|f| f.receipts.iter().any(|r| r.reference.as_deref() == Some("352024110700000004")))
            .map(|f| (f.kind.name().to_string(), f.ledger.iter().map(|p| p.position).collect()))
            .collect();
        kinds.sort();
        kinds
    };
    let registered = |pairs: &[(&str, &str)]| -> reconcile::Names {
        pairs.iter().map(|(id, name)| (id.to_string(), name.to_string())).collect()
    };
    let wang = registered(&[(ID1, "王芳")]);
    assert_eq!(kinds(&ledger(None), &wang), vec![("matched_by_masked_id_name_date".to_string(), vec![3])]);
    // Without the name, or under another, the masked ID is no evidence.
    let receipt_only = vec![("receipt_only".to_string(), vec![])];
    assert_eq!(kinds(&ledger(None), &reconcile::Names::new()), receipt_only);
    assert_eq!(kinds(&ledger(None), &registered(&[(ID1, "王芳芳")])), receipt_only);
    // Two persons fit the mask under that name: no match.
    let twin = "520502196004011233";
    assert!(twin.parse::<ledger::Identity>().is_ok(), "a valid twin ID");
    assert_eq!(kinds(&ledger(Some(twin)), &registered(&[(ID1, "王芳"), (twin, "王芳")])), receipt_only);
    // Beyond the tolerance in days: no match.
    let late = vec![payment(3, "tax", "352024110799999999", "400.00", ID1, "2024-11-12")];
    assert_eq!(kinds(&late, &wang), receipt_only);
}

#[test]
fn a_voided_ticket_alone_leaves_the_run_clean() {
    let (file, bytes) = receipt_fixture("tax-20241101-20241130.csv");
    let statement = parse_mapped_csv(&file, &bytes, &preset_mapping("tax")).expect("parses");
    let ledger = vec![
        payment(1, "tax", "352024110500000001", "1200.00", ID1, "2024-11-05"),
        payment(2, "tax", "352024110600000002", "400.00", ID2, "2024-11-06"),
        payment(3, "tax", "352024110700000004", "400.00", ID1, "2024-11-07"),
    ];
    let report = reconcile([&statement], &ledger, &MatchOptions::default());
    assert!(summarize(&report).is_clean());
    assert_eq!(report.findings.iter().filter(|f| f.kind.is_break()).count(), 0);
    assert_eq!(report.findings.iter().filter(|f| f.kind.name() == "not_received").count(), 1);
}

#[test]
fn every_preset_is_valid_and_listed_in_the_formats_read() {
    let names: Vec<&str> = PRESETS.iter().map(|preset| preset.name).collect();
    let expected = ["wechat", "alipay", "camt053", "camt054", "mt940", "icbc", "ccb", "abc", "boc", "bocom", "cmb"];
    assert_eq!(names, [&expected[..], &["tax", "rural-credit-return"]].concat());
    let presets_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
    for preset in PRESETS {
        assert!(reconcile::FORMATS_READ.contains(preset.name), "{} not in FORMATS_READ", preset.name);
        let on_disk = presets_dir.join(format!("{}.toml", preset.name));
        match preset.definition {
            Definition::Mapping(_) => {
                let shipped = preset.mapping().expect("a mapping").unwrap_or_else(|e| panic!("{}: {e}", preset.name));
                let read = reconcile::read_mapping(&on_disk).expect("the file a user copies");
                assert_eq!(read, shipped, "{}", preset.name);
            }
            Definition::Layout(_) => {
                let shipped = preset.layout().expect("a layout").unwrap_or_else(|e| panic!("{}: {e}", preset.name));
                let (read, _) = reconcile::read_layout_with_digest(&on_disk).expect("the file a user copies");
                assert_eq!(read, shipped, "{}", preset.name);
            }
            Definition::Reader => assert!(!on_disk.exists() && preset.shown().contains(preset.description)),
        }
    }
    assert!(preset("nosuchbank").is_none());
}

fn mapping(toml: &str) -> Mapping {
    Mapping::from_toml("m.toml", toml).expect("mapping")
}

fn parse(text: &str, mapping: &Mapping) -> Result<Statement, String> {
    parse_mapped_csv("x.csv", text.as_bytes(), mapping).map_err(|e| e.to_string())
}

const SPLIT: &str = r##"
header_search_rows = 5
skip_rows = 1
comment_prefixes = ["#"]
footer_patterns = ["合计"]
thousands_separator = ","

[columns]
reference = "流水号"
date = "日期"
credit_amount = "收入"
debit_amount = "支出"
payer_id = "证件号码"
status = "状态"

[status]
received = ["成功"]
"##;

#[test]
fn title_lines_comments_footers_and_split_amounts() {
    let text = "skipped, whatever it holds\n\
                账户明细\n\
                # a comment\n\
                日期,流水号,收入,支出,证件号码,状态\n\
                2024-11-05,=\"A1\",\"1,234.50\",,520521********2756,成功\n\
                # another comment\n\
                2024-11-06,`A2,,￥15.00\t,,成功\n\
                2024-11-06,A3,400.00,,,失败\n\
                \n\
                合计,,\"1,634.50\",15.00,,\n\
                导出时间 2024-12-01 — not a row of the table\n";
    let statement = parse(text, &mapping(SPLIT)).expect("parses");
    let rows: Vec<(String, i64, Direction, Option<&str>)> = statement
        .receipts
        .iter()
        .map(|r| (r.reference.clone().unwrap_or_default(), r.amount.fen(), r.direction, r.payer_id.as_deref()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("A1".to_string(), 123_450, Direction::Credit, Some("520521********2756")),
            ("A2".to_string(), 1_500, Direction::Debit, None),
        ]
    );
    let failed: Vec<Option<&str>> = statement.not_received.iter().map(|r| r.receipt.reference.as_deref()).collect();
    assert_eq!(failed, vec![Some("A3")]);
}

#[test]
fn table_errors_name_file_line_and_field() {
    let m = mapping(SPLIT);
    let head = "x\n日期,流水号,收入,支出,证件号码,状态\n";
    let cases = [
        (
            "2024-11-05,A1,400.00,15.00,,成功\n",
            "x.csv: line 3: expected an amount in one of `收入` and `支出`, found `amounts in both`",
        ),
        ("2024-11-05,A1,,,,成功\n", "x.csv: line 3: expected an amount in one of `收入` and `支出`, found `no amount in either`"),
        (
            "2024-11-05,A1,\"12,34.00\",,,成功\n",
            "x.csv: line 3, field `收入`: expected an amount with digits grouped by `,` in threes (1,234.00), found `12,34.00`",
        ),
        (
            "2024-11-05,A1,400.00,,5205211957041227,成功\n",
            "x.csv: line 3, field `证件号码`: expected an identity number (GB 11643, other:NUMBER, or masked as \
             520521********2756), found `5205211957041227`",
        ),
    ];
    for (row, expected) in cases {
        assert_eq!(parse(&format!("{head}{row}"), &m).map(|_| ()).expect_err(expected), expected);
    }
    let error = parse("x\n标题\n日期,流水号\n", &m).map(|_| ()).expect_err("no header");
    assert_eq!(
        error,
        "x.csv: line 2: expected a header row holding `流水号` within the first 5 rows of the table, found `标题`"
    );
}

#[test]
fn mapping_rules_for_the_new_options() {
    let columns = "[columns]\nreference = \"r\"\ndate = \"d\"\n";
    let cases = [
        (
            format!("{columns}credit_amount = \"c\"\n"),
            "give columns.amount, or columns.credit_amount and columns.debit_amount",
        ),
        (format!("{columns}amount = \"a\"\nstatus = \"s\"\n"), "columns.status needs [status] received values"),
        (
            format!("thousands_separator = \",\"\ndecimal_separator = \",\"\n{columns}amount = \"a\"\n"),
            "thousands_separator: must differ from decimal_separator",
        ),
        (
            format!("footer_patterns = [\" \"]\n{columns}amount = \"a\"\n"),
            "comment_prefixes and footer_patterns: an empty pattern would match every row",
        ),
        (
            "header = false\nheader_search_rows = 3\n[columns]\nreference = 1\ndate = 2\namount = 3\n".to_string(),
            "header_search_rows needs header = true",
        ),
    ];
    for (toml, reason) in cases {
        let error = Mapping::from_toml("m.toml", &toml).map(|_| ()).expect_err(&toml).to_string();
        assert_eq!(error, format!("mapping m.toml: {reason}"));
    }
}

#[test]
fn a_named_preset_reads_through_parse_bytes() {
    let (file, bytes) = receipt_fixture("cmb-20241101-20241130.csv");
    let format = Format::Csv(Box::new(preset_mapping("cmb")));
    let parsed = parse_bytes(&file, &bytes, &format).expect("parses");
    assert_eq!(parsed.format, "csv");
    assert_eq!(parsed.statements[0].receipts.len(), 3);
}

mod excel {
    use super::*;
    use reconcile::{detect_format, parse_mapped_excel};
    use rust_xlsxwriter::{ExcelDateTime, Format as CellFormat, Workbook, Worksheet, XlsxError};

    /// Writes the ICBC statement as a bank's Excel export holds it: title
    /// rows, amounts as numbers, dates as date cells, as a bare serial
    /// number and as text.
    fn icbc_sheet(sheet: &mut Worksheet, fee: f64) -> Result<(), XlsxError> {
        let day = CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        sheet.write_string(0, 0, "中国工商银行企业网上银行账户明细")?;
        sheet.write_string(1, 0, "账号：2402000009200012345")?;
        for (column, name) in ["凭证号", "交易时间", "借方发生额", "贷方发生额", "用途"].iter().enumerate()
        {
            sheet.write_string(3, column as u16, *name)?;
        }
        sheet.write_string(4, 0, "ICBC0001")?;
        sheet.write_datetime_with_format(4, 1, ExcelDateTime::from_ymd(2024, 11, 5)?.and_hms(9, 10, 11)?, &day)?;
        sheet.write_number(4, 3, 1200.0)?;
        sheet.write_string(4, 4, format!("居民医保 {ID1}"))?;
        sheet.write_string(5, 0, "ICBC0002")?;
        sheet.write_string(5, 1, "2024-11-06 15:02:40")?;
        sheet.write_number(5, 3, 400.0)?;
        sheet.write_string(5, 4, format!("代缴 {ID2}"))?;
        sheet.write_string(6, 0, "ICBC0003")?;
        sheet.write_number(6, 1, 45603.0)?; // 2024-11-07 as a bare serial number
        sheet.write_number(6, 2, fee)?;
        sheet.write_string(6, 4, "手续费")?;
        sheet.write_string(7, 0, "合计")?;
        sheet.write_number(7, 3, 1600.0)?;
        Ok(())
    }

    fn workbook(fee: f64, first_sheet: &str) -> Vec<u8> {
        let mut book = Workbook::new();
        let cover = book.add_worksheet();
        cover.set_name(first_sheet).expect("name");
        cover.write_string(0, 0, "封面").expect("cell");
        let sheet = book.add_worksheet();
        sheet.set_name("明细").expect("name");
        icbc_sheet(sheet, fee).expect("sheet");
        book.save_to_buffer().expect("xlsx")
    }

    fn icbc_on_sheet(sheet: Option<&str>) -> Mapping {
        let mut mapping = preset_mapping("icbc");
        mapping.sheet = sheet.map(str::to_string);
        mapping
    }

    #[test]
    fn an_xlsx_statement_reads_like_its_csv() {
        let bytes = workbook(15.0, "封面");
        let statement = parse_mapped_excel("icbc.xlsx", &bytes, &icbc_on_sheet(Some("明细"))).expect("parses");
        let rows: Vec<(String, i64, Direction, String)> = statement
            .receipts
            .iter()
            .map(|r| (r.reference.clone().unwrap_or_default(), r.amount.fen(), r.direction, r.booked_on.to_string()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("ICBC0001".to_string(), 120_000, Direction::Credit, "2024-11-05".to_string()),
                ("ICBC0002".to_string(), 40_000, Direction::Credit, "2024-11-06".to_string()),
                ("ICBC0003".to_string(), 1_500, Direction::Debit, "2024-11-07".to_string()),
            ]
        );
        assert_eq!(statement.receipts[0].source(), "icbc.xlsx (sheet 明细):line 5");
        assert_eq!(outcome(&statement, &bank_ledger("ICBC")), bank_outcome());
        let parsed = parse_bytes("icbc.xlsx", &bytes, &Format::Csv(Box::new(icbc_on_sheet(Some("明细")))));
        assert_eq!(parsed.expect("parses").format, "excel");
    }

    #[test]
    fn a_float_that_is_no_whole_number_of_fen_is_refused_naming_file_sheet_row_and_column() {
        let bytes = workbook(15.005, "封面");
        let error = parse_mapped_excel("icbc.xlsx", &bytes, &icbc_on_sheet(Some("明细"))).expect_err("15.005");
        assert_eq!(
            error.to_string(),
            "icbc.xlsx (sheet 明细): line 7, field `借方发生额`: expected a whole number of fen: `15.005` has more \
             than two decimals (amounts are in yuan, to the fen), found `15.005`"
        );
    }

    #[test]
    fn the_first_sheet_unless_the_mapping_names_one() {
        let bytes = workbook(15.0, "明细之前");
        let error = parse_mapped_excel("icbc.xlsx", &bytes, &icbc_on_sheet(None)).expect_err("the cover sheet");
        assert!(error.to_string().starts_with("icbc.xlsx (sheet 明细之前): line 1: expected a header row"), "{error}");
        let error = parse_mapped_excel("icbc.xlsx", &bytes, &icbc_on_sheet(Some("其他"))).expect_err("no such sheet");
        assert_eq!(
            error.to_string(),
            "icbc.xlsx: whole file: not a readable Excel workbook: no sheet named `其他` (sheets: 明细之前, 明细)"
        );
    }

    #[test]
    fn an_xls_tax_export_reads_like_its_csv() {
        let (file, bytes) = receipt_fixture("tax-20241101-20241130.xls");
        let statement = parse_mapped_excel(&file, &bytes, &preset_mapping("tax")).unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, i64, Option<&str>, String)> = statement
            .receipts
            .iter()
            .map(|r| {
                (
                    r.reference.clone().unwrap_or_default(),
                    r.amount.fen(),
                    r.payer_id.as_deref(),
                    r.booked_on.to_string(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("352024110500000001".into(), 120_000, Some("520502********1233"), "2024-11-05".into()),
                ("352024110600000002".into(), 40_000, Some("520523********3868"), "2024-11-06".into()),
                ("352024110700000004".into(), 40_000, Some("520502********1233"), "2024-11-07".into()),
            ]
        );
        assert_eq!(statement.not_received.len(), 1);
        assert_eq!(statement.receipts[0].source(), "tax-20241101-20241130.xls (sheet 缴费明细):line 5");
    }

    #[test]
    fn a_workbook_of_no_known_layout_shows_its_first_cells() {
        let bytes = workbook(15.0, "封面");
        let error = detect_format("stmt.xlsx", &bytes, None, None).map(|_| ()).expect_err("no mapping");
        let text = error.to_string();
        assert!(
            text.contains("looks like an Excel workbook (XLSX) whose first sheet starts with the cells `封面`"),
            "{text}"
        );
        assert!(text.contains(reconcile::FORMATS_READ) && text.contains(" icbc,"), "{text}");
        let (_, xls) = receipt_fixture("tax-20241101-20241130.xls");
        let error = detect_format("tax.xls", &xls, None, None).map(|_| ()).expect_err("no mapping");
        assert!(error.to_string().contains("an Excel 97-2003 workbook (XLS) whose first sheet starts with the cells"));
        assert!(error.to_string().contains("`序号,电子税票号码,缴费人识别号"), "{error}");
    }

    #[test]
    fn an_xls_claiming_a_vast_sheet_is_refused_before_it_is_read() {
        let (_, mut bytes) = receipt_fixture("tax-20241101-20241130.xls");
        // The sheet's Dimensions record (BIFF8): first row, row after the
        // last, first column, column after the last.
        let at = bytes.windows(4).position(|w| w == [0x00, 0x02, 0x0E, 0x00]).expect("a Dimensions record");
        bytes[at + 8..at + 12].copy_from_slice(&0x0010_0000u32.to_le_bytes());
        bytes[at + 14..at + 16].copy_from_slice(&0x4000u16.to_le_bytes());
        let error = parse_mapped_excel("vast.xls", &bytes, &preset_mapping("tax")).expect_err("vast");
        assert_eq!(
            error.to_string(),
            "vast.xls: whole file: not a readable Excel workbook: a sheet spanning 17180934145 cells, more than 4194304"
        );
    }

    #[test]
    fn a_workbook_named_as_another_format_is_refused_saying_how_it_is_read() {
        let bytes = workbook(15.0, "封面");
        let error = parse_bytes("bill.xlsx", &bytes, &Format::WechatBill { channel: "wechat".into() });
        assert_eq!(
            error.map(|_| ()).expect_err("a workbook").to_string(),
            format!(
                "bill.xlsx: not a format yibao reads (looks like an Excel workbook, read only with --mapping or a \
                 preset, not as wechat-bill); formats read: {}",
                reconcile::FORMATS_READ
            )
        );
    }

    #[test]
    fn a_broken_workbook_is_refused_not_a_panic() {
        let mut bytes = workbook(15.0, "封面");
        bytes.truncate(bytes.len() / 2);
        let error = parse_mapped_excel("cut.xlsx", &bytes, &icbc_on_sheet(None)).expect_err("cut short");
        assert!(error.to_string().starts_with("cut.xlsx: whole file: not a readable Excel workbook"), "{error}");
    }
}
