//! The WeChat Pay bill parser on its fixture, its summary check, and errors
//! naming line and field.

mod common;

use common::{date, receipt_fixture, receipt_text};
use reconcile::{check_statement, parse_wechat_bill, CheckFailure, Direction, Location};

fn parse(text: &str) -> Result<reconcile::Statement, String> {
    parse_wechat_bill("bill.csv", text.as_bytes(), "wechat").map_err(|e| e.to_string())
}

fn error_of(text: &str) -> String {
    parse(text).map(|_| ()).expect_err("expected an error")
}

#[test]
fn bill_figures_are_exact() {
    let (name, bytes) = receipt_fixture("wechat-20241101.csv");
    let bill = parse_wechat_bill(&name, &bytes, "wechat").expect("bill parses");
    assert_eq!(bill.account.as_deref(), Some("1900012345"));
    assert_eq!(bill.receipts.len(), 5);
    let rows: Vec<(u64, &str, i64, Direction)> = bill
        .receipts
        .iter()
        .map(|r| {
            let Location::Line(line) = r.at else { panic!("a line") };
            (line, r.reference.as_deref().unwrap_or(""), r.amount.fen(), r.direction)
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, "WX20241101083015002", 40_000, Direction::Credit),
            (3, "WX20241101101122003", 40_000, Direction::Credit),
            (4, "WX20241101120000777", 40_000, Direction::Credit),
            (5, "WX20241101154530004", 40_000, Direction::Credit),
            (6, "WXTK20241101163000001", 40_000, Direction::Debit),
        ]
    );
    let refund = &bill.receipts[4];
    assert_eq!(refund.original_reference.as_deref(), Some("WX20241101101122003"));
    assert_eq!(refund.booked_on, date("2024-11-01"));
    assert_eq!(refund.channel.as_deref(), Some("wechat"));
    assert_eq!(bill.receipts[0].payer_id.as_deref(), Some("520502196002147380"));
    // The payer's ID (the first valid one) from the merchant data field.
    assert_eq!(bill.receipts[3].payer_id.as_deref(), Some("520502197205061637"));
    assert_eq!(bill.receipts[0].settlement_ref.as_deref(), Some("4200002456202411010830150012"));

    let totals: Vec<(&str, i128, i128)> =
        bill.control_totals.iter().map(|t| (t.what.as_str(), t.declared, t.computed)).collect();
    assert_eq!(
        totals,
        vec![
            ("总交易单数", 5, 5),
            ("应结订单总金额", 160_000, 160_000),
            ("退款总金额", 40_000, 40_000),
            ("订单总金额", 160_000, 160_000)
        ]
    );
    assert_eq!(check_statement(&bill), vec![]);
}

#[test]
fn a_summary_that_does_not_add_up_fails_the_check() {
    let text = receipt_text("wechat-20241101.csv").replace("`5,`1600.00,`400.00", "`5,`2000.00,`400.00");
    let bill = parse(&text).expect("parses: the check is separate");
    let failures = check_statement(&bill);
    assert_eq!(failures.len(), 1);
    assert!(matches!(&failures[0], CheckFailure::ControlTotal(t) if t.what == "应结订单总金额"));
    assert!(failures[0].is_fatal());
    assert_eq!(
        failures[0].to_string(),
        "line 8, field `应结订单总金额`: 应结订单总金额 declares 2000.00, the detail adds up to 1600.00"
    );
}

#[test]
fn a_row_count_that_differs_fails_the_check() {
    let text = receipt_text("wechat-20241101.csv").replace("`5,`1600.00", "`6,`1600.00");
    let failures = check_statement(&parse(&text).expect("parses"));
    assert_eq!(
        failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["line 8, field `总交易单数`: 总交易单数 declares 6, the detail adds up to 5".to_string()]
    );
}

#[test]
fn fields_need_their_backtick() {
    let text = receipt_text("wechat-20241101.csv").replacen("`WX20241101101122003", "WX20241101101122003", 1);
    assert_eq!(
        error_of(&text),
        "bill.csv: line 3, field `商户订单号`: expected a field starting with a backtick (`), found `WX20241101101122003`"
    );
}

#[test]
fn unknown_status_is_refused() {
    let text = receipt_text("wechat-20241101.csv").replacen("`SUCCESS", "`REVOKED", 1);
    assert_eq!(error_of(&text), "bill.csv: line 2, field `交易状态`: expected SUCCESS or REFUND, found `REVOKED`");
}

#[test]
fn bad_amount_and_time_are_refused() {
    let text = receipt_text("wechat-20241101.csv").replacen("`400.00,`0.00,`0,`0", "`400.5.0,`0.00,`0,`0", 1);
    assert!(error_of(&text).starts_with("bill.csv: line 2, field `应结订单金额`: expected an amount in yuan"));
    let text = receipt_text("wechat-20241101.csv").replacen("`2024-11-01 08:30:15", "`2024-11-31 08:30:15", 1);
    assert!(error_of(&text).starts_with("bill.csv: line 2, field `交易时间`: expected a date"));
    let text = receipt_text("wechat-20241101.csv").replacen("`CNY", "`USD", 1);
    assert_eq!(error_of(&text), "bill.csv: line 2, field `货币种类`: expected CNY, found `USD`");
}

#[test]
fn structure_errors_name_the_line() {
    let text = receipt_text("wechat-20241101.csv");
    let header_only: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        error_of(&header_only),
        "bill.csv: line 4: expected the summary header (总交易单数,应结订单总金额,…), found nothing"
    );
    assert!(error_of("").starts_with("bill.csv: line 1: expected the bill's header row"));
    assert!(
        error_of("交易时间,商户订单号\n").contains("expected a WeChat Pay bill header with the column `微信订单号`")
    );
    let short = text.replacen(",`0.00%,`400.00,`0.00,`\r\n", ",`0.00%,`400.00\r\n", 1);
    assert_eq!(error_of(&short), "bill.csv: line 2: expected 27 fields, as in the header, found `25 fields`");
    let trailing = format!("{text}`1,`2\r\n");
    assert_eq!(
        error_of(&trailing),
        "bill.csv: line 9: expected the end of the bill after its summary row, found ``1,`2`"
    );
}

#[test]
fn non_utf8_is_refused_with_its_line() {
    let mut bytes = receipt_fixture("wechat-20241101.csv").1;
    let second_line = bytes.iter().position(|&b| b == b'\n').expect("lines") + 1;
    bytes[second_line + 3] = 0xFE;
    let message = parse_wechat_bill("b.csv", &bytes, "wechat").map(|_| ()).expect_err("bad UTF-8").to_string();
    assert_eq!(message, "b.csv: line 2: not valid UTF-8 text");
}
