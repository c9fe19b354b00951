//! Laws: parsers never panic, whatever the bytes; matching does not depend on
//! the order of its inputs; every receipt and every ledger item is accounted
//! for exactly once, to the fen.

mod common;

use common::{date, plains, receipt_fixture};
use ledger::Money;
use proptest::prelude::*;
use reconcile::{
    check_statement, detect_format, parse_alipay_bill, parse_batch_return, parse_bytes, parse_camt053,
    parse_mapped_csv, parse_mapped_excel, parse_mt940, parse_wechat_bill, reconcile, summarize, ControlTotal,
    Direction, Layout, LedgerPayment, Location, Mapping, MatchOptions, Period, Receipt, Side, Statement,
};
use std::collections::HashMap;
use std::sync::Arc;

const FIXTURES: [&str; 20] = [
    "camt053-clean.xml",
    "camt053-breaks.xml",
    "camt053-failing-checks.xml",
    "wechat-20241101.csv",
    "nongxin-20241108-20241112.csv",
    "icbc-20241101-20241130.csv",
    "ccb-20241101-20241130.csv",
    "abc-20241101-20241130.csv",
    "boc-20241101-20241130.csv",
    "bocom-20241101-20241130.csv",
    "cmb-20241101-20241130.csv",
    "tax-20241101-20241130.csv",
    "tax-20241101-20241130.xls",
    "wechat-success-20241101.csv",
    "wechat-refund-20241101.csv.gz",
    "wechat-fund-flow-20241101.csv",
    "alipay-20241025.zip",
    "camt054-20241015-20241020.xml",
    "mt940-20241108-20241112.sta",
    "rural-credit-return-20241108.txt",
];

/// A fixture's bytes: as stored, or (`inner`) out of its gzip or zip, so
/// that mutations reach the bill's parser as well as the container's.
fn fixture_bytes(index: usize, inner: bool) -> Vec<u8> {
    let (name, bytes) = receipt_fixture(FIXTURES[index]);
    if !inner {
        return bytes;
    }
    reconcile::unpack(&name, &bytes).map(|unpacked| unpacked.bytes.into_owned()).expect("fixture unpacks")
}

fn nongxin() -> Mapping {
    let path = common::fixtures_dir().join("receipts/nongxin.toml");
    reconcile::read_mapping(&path).expect("mapping")
}

/// Runs every parser on the bytes; then checks and matching on what parses.
fn parse_everything(bytes: &[u8], mapping: &Mapping) {
    let ledger = common::ledger_items();
    if let Ok(statements) = parse_camt053("f.xml", bytes, None) {
        statements.iter().for_each(|s| drop(check_statement(s)));
        summarize(&reconcile(&statements, &ledger, &MatchOptions::default()));
    }
    if let Ok(statement) = parse_wechat_bill("f.csv", bytes, "wechat") {
        summarize(&reconcile([&statement], &ledger, &MatchOptions::default()));
    }
    if let Ok(statement) = parse_mapped_csv("f.csv", bytes, mapping) {
        summarize(&reconcile([&statement], &ledger, &MatchOptions::default()));
    }
    if let Ok(statements) = parse_mt940("f.sta", bytes, None) {
        statements.iter().for_each(|s| drop(check_statement(s)));
        summarize(&reconcile(&statements, &ledger, &MatchOptions::default()));
    }
    // The bytes as a bill's detail and as its summary.
    if let Ok(statement) = parse_alipay_bill("f.csv", bytes, Some(("s.csv", bytes)), "alipay") {
        drop(check_statement(&statement));
        summarize(&reconcile([&statement], &ledger, &MatchOptions::default()));
    }
    let layout = Layout::preset("rural-credit-return").expect("preset");
    if let Ok(statement) = parse_batch_return("f.txt", bytes, &layout) {
        summarize(&reconcile([&statement], &ledger, &MatchOptions::default()));
    }
    // Containers, and whatever the content is judged to be.
    drop(reconcile::unpack_within("f.zip", bytes, 1 << 20));
    if let Ok(format) = detect_format("f", bytes, None, None) {
        drop(parse_bytes("f", bytes, &format));
    }
    for mapping in reconcile::PRESETS.iter().filter_map(|preset| preset.mapping()) {
        parse_table(bytes, &mapping.expect("a shipped preset"), &ledger);
    }
}

/// The table readers (CSV text and workbooks) through one mapping, then
/// matching on what parses.
fn parse_table(bytes: &[u8], mapping: &Mapping, ledger: &[LedgerPayment]) {
    let parsed = [parse_mapped_csv("f.csv", bytes, mapping), parse_mapped_excel("f.xlsx", bytes, mapping)];
    for statement in parsed.into_iter().flatten() {
        summarize(&reconcile([&statement], ledger, &MatchOptions::default()));
    }
}

/// A mapping of random table options, as TOML (the way a user writes one).
fn table_mapping() -> impl Strategy<Value = Mapping> {
    let names = ["日期", "流水号", "收入", "支出", "金额", "状态", "证件号码", "用途", "交易时间"];
    let column = move || prop::sample::select(names.to_vec());
    (
        (0..4usize, 1..6usize, prop::option::of(prop::sample::select(vec![",", ".", " ", "'"]))),
        (prop::collection::vec(prop::sample::select(vec!["#", "合计", "共", "说明", "x"]), 0..3), any::<bool>()),
        (column(), column(), column(), column(), column()),
        (any::<bool>(), any::<bool>(), prop::option::of(prop::sample::select(vec!["%Y%m%d", "%Y-%m-%d %H:%M:%S"]))),
    )
        .prop_map(
            |((skip, search, thousands), (patterns, split), (r, d, a, b, s), (status, payer, date_format))| {
                let mut toml = format!("skip_rows = {skip}\nheader_search_rows = {search}\nencoding = \"gbk\"\n");
                if let Some(separator) = thousands {
                    toml.push_str(&format!("thousands_separator = \"{separator}\"\n"));
                }
                if let Some(format) = date_format {
                    toml.push_str(&format!("date_format = \"{format}\"\n"));
                }
                toml.push_str(&format!("comment_prefixes = {patterns:?}\nfooter_patterns = {patterns:?}\n[columns]\n"));
                toml.push_str(&format!("reference = \"{r}\"\ndate = \"{d}\"\n"));
                if split {
                    toml.push_str(&format!("credit_amount = \"{a}\"\ndebit_amount = \"{b}\"\n"));
                } else {
                    toml.push_str(&format!("amount = \"{a}\"\n"));
                }
                if payer {
                    toml.push_str("payer_id = \"证件号码\"\npayer_text = \"用途\"\n");
                }
                if status {
                    toml.push_str(&format!("status = \"{s}\"\n[status]\nreceived = [\"成功\", \"正常\"]\n"));
                }
                // Random options may contradict each other: those fall back to a
                // plain mapping, the rest is what is tested.
                Mapping::from_toml("m.toml", &toml).unwrap_or_else(|_| nongxin())
            },
        )
}

/// A small workbook holding a statement with title rows, numbers and dates.
fn workbook_bytes() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows: [[&str; 6]; 5] = [
        ["账户明细", "", "", "", "", ""],
        ["日期", "流水号", "收入", "支出", "证件号码", "状态"],
        ["2024-11-05", "A1", "1200", "", "520521********2756", "成功"],
        ["45602", "A2", "", "15.5", "520502198503121233", "失败"],
        ["合计", "", "1200", "15.5", "", ""],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            match cell.parse::<f64>() {
                Ok(number) => sheet.write_number(r, c, number).map(|_| ()),
                Err(_) => sheet.write_string(r, c, *cell).map(|_| ()),
            }
            .expect("cell");
        }
    }
    book.save_to_buffer().expect("xlsx")
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Repeat(usize, usize),
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match *mutation {
        Mutation::Flip(i, b) => {
            let i = at(i);
            bytes[i] ^= b | 1;
        }
        Mutation::Insert(i, b) => {
            let i = at(i);
            bytes.insert(i, b);
        }
        Mutation::Delete(i, n) => {
            let i = at(i);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Repeat(i, n) => {
            let i = at(i);
            let end = (i + n).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(i..i, copy);
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), prop::sample::select(b"<>/&;`,\"\r\n0-.x\x80\xff".to_vec()))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 1usize..400).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse_everything(&bytes, &nongxin());
        let _ = Mapping::from_toml("m.toml", &String::from_utf8_lossy(&bytes));
        let _ = Layout::from_toml("l.toml", &String::from_utf8_lossy(&bytes));
    }

    /// Arbitrary bytes behind a zip's or a gzip's magic number, and a zip
    /// whose directory points anywhere.
    #[test]
    fn containers_never_panic(
        magic in prop::sample::select(vec![&b"PK\x03\x04"[..], &b"PK\x05\x06"[..], &b"\x1F\x8B\x08\x00"[..]]),
        body in prop::collection::vec(any::<u8>(), 0..1024),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&body);
        parse_everything(&bytes, &nongxin());
        let (_, mut zip) = receipt_fixture("alipay-20241025.zip");
        for m in &mutations {
            mutate(&mut zip, m);
        }
        zip.extend_from_slice(&body);
        drop(reconcile::unpack_within("f.zip", &zip, 1 << 20));
    }

    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        fixture in 0..FIXTURES.len(),
        inner in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = fixture_bytes(fixture, inner);
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        parse_everything(&bytes, &nongxin());
    }

    #[test]
    fn table_readers_never_panic_whatever_the_mapping_options(
        mapping in table_mapping(),
        fixture in 5..FIXTURES.len(),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let ledger = common::ledger_items();
        let (_, mut bytes) = receipt_fixture(FIXTURES[fixture]);
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        parse_table(&bytes, &mapping, &ledger);
    }

    #[test]
    fn workbook_readers_never_panic_on_mutated_workbooks(
        mapping in table_mapping(),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut bytes = workbook_bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        parse_table(&bytes, &mapping, &common::ledger_items());
    }
}

// ---- generated receipts and ledger items ----

const PERSONS: [&str; 4] = ["520502198503121233", "520523200112308406", "52052619830725841X", "520502197205061637"];
const CHANNELS: [&str; 2] = ["wechat", "alipay"];
const AMOUNTS_FEN: [i64; 3] = [40_000, 38_000, 107_000];

#[derive(Clone, Debug)]
struct GenItem {
    refund: bool,
    channel: usize,
    reference: u8,
    original: u8,
    amount: usize,
    person: usize,
    payer: Option<usize>,
    day: u32,
}

#[derive(Clone, Debug)]
struct GenReceipt {
    statement: usize,
    debit: bool,
    reversal: bool,
    channel: Option<usize>,
    reference: Option<u8>,
    original: Option<u8>,
    amount: usize,
    payer: Option<usize>,
    day: u32,
    /// (reference, amount) of parts; a batch when two or more.
    parts: Vec<(Option<u8>, usize)>,
    /// A batch whose parts do not add up (its statement fails its checks).
    off_by_fen: bool,
}

fn gen_item() -> impl Strategy<Value = GenItem> {
    (any::<bool>(), 0..2usize, 0..12u8, 0..12u8, 0..3usize, 0..4usize, prop::option::of(0..4usize), 0..6u32).prop_map(
        |(refund, channel, reference, original, amount, person, payer, day)| GenItem {
            refund,
            channel,
            reference,
            original,
            amount,
            person,
            payer,
            day,
        },
    )
}

fn gen_receipt() -> impl Strategy<Value = GenReceipt> {
    (
        (0..3usize, prop::bool::weighted(0.3), prop::bool::weighted(0.1), prop::option::of(0..2usize)),
        (
            prop::option::weighted(0.85, 0..12u8),
            prop::option::of(0..12u8),
            0..3usize,
            prop::option::of(0..4usize),
            0..6u32,
        ),
        prop::collection::vec((prop::option::weighted(0.9, 0..12u8), 0..3usize), 0..4),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |((statement, debit, reversal, channel), (reference, original, amount, payer, day), parts, off_by_fen)| {
                GenReceipt {
                    statement,
                    debit,
                    reversal,
                    channel,
                    reference,
                    original,
                    amount,
                    payer,
                    day,
                    parts: if parts.len() >= 2 { parts } else { Vec::new() },
                    off_by_fen,
                }
            },
        )
}

fn money(fen: i64) -> Money {
    Money::from_fen(fen).expect("in range")
}

fn day(offset: u32) -> ledger::Date {
    ledger::Date(date("2024-11-01").0 + chrono::Days::new(u64::from(offset)))
}

fn ledger_of(items: &[GenItem]) -> Vec<LedgerPayment> {
    items
        .iter()
        .enumerate()
        .map(|(i, g)| LedgerPayment {
            position: i as u64 + 1,
            kind: if g.refund { Side::Refund } else { Side::Payment },
            channel: CHANNELS[g.channel].to_string(),
            channel_ref: format!("{}{}", if g.refund { "T" } else { "R" }, g.reference),
            refund_of: g.refund.then(|| format!("R{}", g.original)),
            amount: money(AMOUNTS_FEN[g.amount]),
            person: PERSONS[g.person].to_string(),
            payer: g.payer.map(|p| PERSONS[p].to_string()),
            business_date: day(g.day),
        })
        .collect()
}

fn receipt_of(index: usize, g: &GenReceipt) -> Receipt {
    let file: Arc<str> = Arc::from(format!("f{}", g.statement));
    let direction = if g.debit { Direction::Debit } else { Direction::Credit };
    let prefix = if g.debit { "T" } else { "R" };
    let parts: Vec<Receipt> = g
        .parts
        .iter()
        .enumerate()
        .map(|(p, &(reference, amount))| Receipt {
            file: file.clone(),
            at: Location::Xml(format!("/e{index}/p{p}")),
            seq: index as u32,
            channel: g.channel.map(|c| CHANNELS[c].to_string()),
            reference: reference.map(|r| format!("R{r}")),
            original_reference: None,
            amount: money(AMOUNTS_FEN[amount]),
            direction,
            reversal: g.reversal,
            booked_on: day(g.day),
            payer_id: g.payer.map(|p| PERSONS[p].to_string()),
            payer_name: None,
            settlement_ref: None,
            parts: Vec::new(),
        })
        .collect();
    let parts_fen: i64 = parts.iter().map(|p| p.amount.fen()).sum();
    let amount = if parts.is_empty() { AMOUNTS_FEN[g.amount] } else { parts_fen + i64::from(g.off_by_fen) };
    Receipt {
        file,
        at: Location::Xml(format!("/e{index}")),
        seq: index as u32,
        channel: g.channel.map(|c| CHANNELS[c].to_string()),
        reference: g.reference.map(|r| format!("{prefix}{r}")),
        original_reference: g.original.map(|r| format!("R{r}")),
        amount: money(amount),
        direction,
        reversal: g.reversal,
        booked_on: day(g.day),
        payer_id: g.payer.map(|p| PERSONS[p].to_string()),
        payer_name: None,
        settlement_ref: None,
        parts,
    }
}

/// Statements of the receipts in the given order (indexes into `receipts`).
fn statements_of(receipts: &[GenReceipt], order: &[usize]) -> Vec<Statement> {
    let mut by_statement: Vec<Statement> =
        (0..3).map(|s| Statement::of_file(Arc::from(format!("f{s}")), Vec::new())).collect();
    for &index in order {
        let receipt = receipt_of(index, &receipts[index]);
        let statement = &mut by_statement[receipts[index].statement];
        if receipt.is_batch() {
            statement.control_totals.push(ControlTotal {
                what: "entry amount against the sum of its parts".into(),
                at: receipt.at.clone(),
                declared: i128::from(receipt.amount.fen()),
                computed: receipt.parts.iter().map(|p| i128::from(p.amount.fen())).sum(),
                is_count: false,
            });
        }
        statement.receipts.push(receipt);
    }
    by_statement
}

fn scenario() -> impl Strategy<Value = (Vec<GenItem>, Vec<usize>, Vec<GenReceipt>, Vec<usize>, u32, bool)> {
    (prop::collection::vec(gen_item(), 0..40), prop::collection::vec(gen_receipt(), 0..40), 0..4u32, any::<bool>())
        .prop_flat_map(|(items, receipts, tolerance, with_period)| {
            let item_order = Just((0..items.len()).collect::<Vec<_>>()).prop_shuffle();
            let receipt_order = Just((0..receipts.len()).collect::<Vec<_>>()).prop_shuffle();
            (Just(items), item_order, Just(receipts), receipt_order, Just(tolerance), Just(with_period))
        })
}

fn options(tolerance_days: u32, with_period: bool) -> MatchOptions {
    let period = with_period.then(|| Period { from: day(1), to: day(4) });
    MatchOptions { tolerance_days, period }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matching_does_not_depend_on_input_order(
        (items, item_order, receipts, receipt_order, tolerance, with_period) in scenario()
    ) {
        let options = options(tolerance, with_period);
        let ledger = ledger_of(&items);
        let shuffled_ledger: Vec<LedgerPayment> = item_order.iter().map(|&i| ledger[i].clone()).collect();
        let natural: Vec<usize> = (0..receipts.len()).collect();
        let statements = statements_of(&receipts, &natural);
        let mut shuffled_statements = statements_of(&receipts, &receipt_order);
        shuffled_statements.reverse();

        let report = reconcile(&statements, &ledger, &options);
        let shuffled = reconcile(&shuffled_statements, &shuffled_ledger, &options);
        prop_assert_eq!(plains(&report.findings), plains(&shuffled.findings));
        prop_assert_eq!(summarize(&report), summarize(&shuffled));
    }

    #[test]
    fn every_receipt_and_ledger_item_is_accounted_for_once(
        (items, _item_order, receipts, _receipt_order, tolerance, with_period) in scenario()
    ) {
        let options = options(tolerance, with_period);
        let ledger = ledger_of(&items);
        let natural: Vec<usize> = (0..receipts.len()).collect();
        let statements = statements_of(&receipts, &natural);
        let report = reconcile(&statements, &ledger, &options);

        let mut receipt_uses: HashMap<*const Receipt, u32> = HashMap::new();
        let mut ledger_uses: HashMap<*const LedgerPayment, u32> = HashMap::new();
        for finding in &report.findings {
            for &receipt in &finding.receipts {
                *receipt_uses.entry(receipt as *const Receipt).or_default() += 1;
                prop_assert_eq!(receipt.side(), finding.side);
            }
            for &item in &finding.ledger {
                *ledger_uses.entry(item as *const LedgerPayment).or_default() += 1;
                prop_assert_eq!(item.kind, finding.side);
            }
        }
        prop_assert!(receipt_uses.values().all(|&n| n == 1));
        prop_assert!(ledger_uses.values().all(|&n| n == 1));

        let in_period = |date: ledger::Date| options.period.is_none_or(|p| p.contains(date));
        let mut expected_fen: HashMap<Side, i128> = HashMap::new();
        for receipt in statements.iter().flat_map(|s| &s.receipts).filter(|r| in_period(r.booked_on)) {
            let whole = receipt_uses.contains_key(&(receipt as *const Receipt));
            let parts = receipt.parts.iter().filter(|p| receipt_uses.contains_key(&(*p as *const Receipt))).count();
            // Either the receipt itself or every one of its parts, never both.
            prop_assert!(whole != (parts > 0) && (parts == 0 || parts == receipt.parts.len()), "{}", receipt);
            *expected_fen.entry(receipt.side()).or_default() += i128::from(receipt.amount.fen());
        }
        for item in ledger.iter().filter(|p| in_period(p.business_date)) {
            prop_assert!(ledger_uses.contains_key(&(item as *const LedgerPayment)));
        }
        let summary = summarize(&report);
        for side in [Side::Payment, Side::Refund] {
            let ledger_fen: i128 = ledger.iter().filter(|p| p.kind == side && in_period(p.business_date)).map(|p| i128::from(p.amount.fen())).sum();
            prop_assert_eq!(summary.receipts(side).1, expected_fen.get(&side).copied().unwrap_or(0));
            prop_assert_eq!(summary.ledger(side).1, ledger_fen);
        }
        // The recorded event's rows add up to the same.
        let counts = summary.result_counts().expect("totals fit");
        let event_fen = |prefix: &str| -> i128 {
            counts.iter().filter(|c| c.kind.starts_with(prefix)).map(|c| i128::from(c.total.fen())).sum()
        };
        prop_assert_eq!(event_fen("receipts."), summary.receipts(Side::Payment).1 + summary.receipts(Side::Refund).1);
        prop_assert_eq!(event_fen("ledger."), summary.ledger(Side::Payment).1 + summary.ledger(Side::Refund).1);
        // Matches pair equal money.
        for finding in report.findings.iter().filter(|f| f.kind.is_match()) {
            let receipts: i64 = finding.receipts.iter().map(|r| r.amount.fen()).sum();
            let ledger: i64 = finding.ledger.iter().map(|p| p.amount.fen()).sum();
            prop_assert_eq!(receipts, ledger);
        }
    }
}
