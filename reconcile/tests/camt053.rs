//! The camt.053 parser on its fixtures: figures to the fen, and every error
//! naming the XML path and what was expected.

mod common;

use common::{date, receipt_fixture, receipt_text};
use reconcile::{check_statement, parse_camt053, Direction, Location, Period};

const STMT: &str = "/Document/BkToCstmrStmt/Stmt[1]";

fn parse_text(text: &str) -> Result<Vec<reconcile::Statement>, String> {
    parse_camt053("statement.xml", text.as_bytes(), None).map_err(|e| e.to_string())
}

fn error_of(text: &str) -> String {
    match parse_text(text) {
        Ok(_) => panic!("expected an error"),
        Err(message) => message,
    }
}

#[test]
fn clean_statement_figures_are_exact() {
    let (name, bytes) = receipt_fixture("camt053-clean.xml");
    let statements = parse_camt053(&name, &bytes, None).expect("clean statement parses");
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement.id.as_deref(), Some("BJSW-2024-10-11"));
    assert_eq!(statement.account.as_deref(), Some("2400012345678901"));
    assert_eq!(statement.period, Some(Period { from: date("2024-10-01"), to: date("2024-11-30") }));
    let balances = statement.balances.as_ref().expect("balances");
    assert_eq!(balances.opening.signed_fen(), 125_000_000);
    assert_eq!(balances.closing.signed_fen(), 125_480_000);
    assert_eq!(balances.closing.at, Location::Xml(format!("{STMT}/Bal[2]")));
    assert_eq!(statement.receipts.len(), 12);

    let credits: i64 =
        statement.receipts.iter().filter(|r| r.direction == Direction::Credit).map(|r| r.amount.fen()).sum();
    let debits: i64 =
        statement.receipts.iter().filter(|r| r.direction == Direction::Debit).map(|r| r.amount.fen()).sum();
    assert_eq!((credits, debits), (600_000, 120_000));

    let first = &statement.receipts[0];
    assert_eq!(first.at, Location::Xml(format!("{STMT}/Ntry[1]")));
    assert_eq!(first.reference.as_deref(), Some("WX20241005093012001"));
    assert_eq!(first.amount.fen(), 40_000);
    assert_eq!(first.direction, Direction::Credit);
    assert_eq!(first.booked_on, date("2024-10-05"));
    assert_eq!(first.payer_id.as_deref(), Some("520502198503121233"));
    assert_eq!(first.settlement_ref.as_deref(), Some("GZB2024100500017"));
    assert!(first.parts.is_empty());

    // The payer's ID found in the remittance information.
    assert_eq!(statement.receipts[2].payer_id.as_deref(), Some("520524198809305164"));

    let batch = &statement.receipts[4];
    assert_eq!(batch.amount.fen(), 160_000);
    assert_eq!(batch.reference.as_deref(), Some("GZB2024110200088"));
    let parts: Vec<(&str, i64)> =
        batch.parts.iter().map(|p| (p.reference.as_deref().unwrap_or(""), p.amount.fen())).collect();
    assert_eq!(
        parts,
        vec![
            ("WX20241101083015002", 40_000),
            ("WX20241101101122003", 40_000),
            ("WX20241101120000777", 40_000),
            ("WX20241101154530004", 40_000)
        ]
    );
    assert_eq!(batch.parts[1].at, Location::Xml(format!("{STMT}/Ntry[5]/NtryDtls[1]/TxDtls[2]")));

    let refund = &statement.receipts[5];
    assert_eq!(refund.direction, Direction::Debit);
    assert_eq!(refund.reference.as_deref(), Some("WXTK20241101163000001"));
    assert_eq!(refund.payer_id.as_deref(), Some("52052619830725841X"));

    assert_eq!(check_statement(statement), vec![]);
}

#[test]
fn reversal_entries_name_the_payment_they_undo() {
    let (name, bytes) = receipt_fixture("camt053-breaks.xml");
    let statements = parse_camt053(&name, &bytes, Some("any_channel_given")).expect("parses");
    let reversal = &statements[0].receipts[11];
    assert!(reversal.reversal);
    assert_eq!(reversal.direction, Direction::Debit);
    assert_eq!(reversal.original_reference.as_deref(), Some("NX20241108000103"));
    assert_eq!(reversal.channel.as_deref(), Some("any_channel_given"));
    // NOTPROVIDED falls back to the bank's reference.
    assert_eq!(statements[0].receipts[1].reference.as_deref(), Some("GZB2024101700321"));
}

#[test]
fn another_currency_is_refused_at_its_path() {
    let text = receipt_text("camt053-clean.xml").replacen(
        r#"<Amt Ccy="CNY">400.00</Amt>"#,
        r#"<Amt Ccy="USD">400.00</Amt>"#,
        1,
    );
    let message = error_of(&text);
    assert_eq!(message, format!("statement.xml: {STMT}/Ntry[1]/Amt/@Ccy: expected currency CNY, found `USD`"));
}

#[test]
fn a_third_decimal_is_refused() {
    let text = receipt_text("camt053-clean.xml").replacen(
        r#"<Amt Ccy="CNY">400.00</Amt>"#,
        r#"<Amt Ccy="CNY">400.001</Amt>"#,
        1,
    );
    let message = error_of(&text);
    assert!(message.starts_with(&format!("statement.xml: {STMT}/Ntry[1]/Amt: expected ")), "{message}");
    assert!(message.contains("more than two decimals"), "{message}");
}

#[test]
fn amounts_are_digits_only() {
    for bad in ["-400.00", "4e2", "four hundred", "", "400,00"] {
        let text = receipt_text("camt053-clean.xml").replacen(
            r#"<Amt Ccy="CNY">400.00</Amt>"#,
            &format!(r#"<Amt Ccy="CNY">{bad}</Amt>"#),
            1,
        );
        let message = error_of(&text);
        assert!(message.contains(&format!("{STMT}/Ntry[1]/Amt: expected an amount in yuan")), "{bad}: {message}");
    }
}

#[test]
fn a_bad_indicator_is_refused() {
    let text =
        receipt_text("camt053-clean.xml").replacen("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>CREDIT</CdtDbtInd>", 1);
    assert_eq!(
        error_of(&text),
        format!("statement.xml: {STMT}/Bal[1]/CdtDbtInd: expected CRDT or DBIT, found `CREDIT`")
    );
}

#[test]
fn a_missing_booking_date_is_refused() {
    let text =
        receipt_text("camt053-clean.xml").replacen("<BookgDt><DtTm>2024-10-05T09:30:12+08:00</DtTm></BookgDt>", "", 1);
    assert_eq!(error_of(&text), format!("statement.xml: {STMT}/Ntry[1]: expected a BookgDt, found nothing"));
}

#[test]
fn an_impossible_date_is_refused() {
    let text =
        receipt_text("camt053-clean.xml").replacen("<BookgDt><Dt>2024-10-15</Dt>", "<BookgDt><Dt>2024-02-30</Dt>", 1);
    let message = error_of(&text);
    assert!(message.starts_with(&format!("statement.xml: {STMT}/Ntry[2]/BookgDt/Dt: expected a date")), "{message}");
}

#[test]
fn a_statement_without_closing_balance_is_refused() {
    let text = receipt_text("camt053-clean.xml").replacen("<Cd>CLBD</Cd>", "<Cd>ITBD</Cd>", 1);
    assert_eq!(
        error_of(&text),
        format!("statement.xml: {STMT}: expected balances OPBD (or PRCD) and CLBD, found nothing")
    );
}

#[test]
fn pending_entries_are_refused() {
    let text = receipt_text("camt053-clean.xml").replacen("<Sts><Cd>BOOK</Cd></Sts>", "<Sts><Cd>PDNG</Cd></Sts>", 1);
    assert_eq!(
        error_of(&text),
        format!("statement.xml: {STMT}/Ntry[1]/Sts/Cd: expected status BOOK (a statement reports booked entries), found `PDNG`")
    );
}

#[test]
fn a_batched_entry_needs_amounts_per_transaction() {
    let text = receipt_text("camt053-clean.xml").replacen(
        "<EndToEndId>WX20241101083015002</EndToEndId>\n            </Refs>\n            <Amt Ccy=\"CNY\">400.00</Amt>",
        "<EndToEndId>WX20241101083015002</EndToEndId>\n            </Refs>",
        1,
    );
    assert_eq!(
        error_of(&text),
        format!(
            "statement.xml: {STMT}/Ntry[5]/NtryDtls[1]/TxDtls[1]: expected an Amt in each TxDtls of a batched entry, found nothing"
        )
    );
}

#[test]
fn not_a_camt053_document() {
    assert!(error_of("").contains("statement.xml: /: expected a camt.053 `Document`"));
    assert!(
        error_of("<Foo/>").contains("statement.xml: /Foo: expected a camt.053 `Document` root element, found `Foo`")
    );
    let other =
        r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn/></Document>"#;
    // A camt.054 notification is read, and must notify something.
    assert_eq!(
        error_of(other),
        "statement.xml: /Document/BkToCstmrDbtCdtNtfctn: expected at least one Ntfctn, found nothing"
    );
    let no_statement = r#"<Document><BkToCstmrStmt><GrpHdr/></BkToCstmrStmt></Document>"#;
    assert_eq!(
        error_of(no_statement),
        "statement.xml: /Document/BkToCstmrStmt: expected at least one Stmt, found nothing"
    );
    let wrong_message = r#"<Document><BkToCstmrAcctRpt/></Document>"#;
    assert!(error_of(wrong_message).contains("/Document/BkToCstmrAcctRpt: expected `BkToCstmrStmt`"));
}

#[test]
fn broken_xml_names_where() {
    let text = receipt_text("camt053-clean.xml");
    let cut = &text[..text.find("<NtryRef>3</NtryRef>").expect("entry 3")];
    let message = error_of(&format!("{cut}</Foo>"));
    assert!(message.starts_with(&format!("statement.xml: {STMT}/Ntry[3] (byte ")), "{message}");
    assert!(message.contains("not well-formed XML"), "{message}");
}

#[test]
fn entities_and_doctypes() {
    let text =
        receipt_text("camt053-clean.xml").replacen("<Id>BJSW-2024-10-11</Id>", "<Id>BJSW&amp;2024&#x2D;1</Id>", 1);
    let statements = parse_text(&text).expect("predefined and character references resolve");
    assert_eq!(statements[0].id.as_deref(), Some("BJSW&2024-1"));
    let text = receipt_text("camt053-clean.xml").replacen("<Id>BJSW-2024-10-11</Id>", "<Id>&boom;</Id>", 1);
    assert!(error_of(&text).contains(&format!("{STMT}/Id: expected a predefined XML entity")));
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE Document [<!ENTITY boom \"x\">]><Document/>";
    assert!(error_of(doctype).contains("a DOCTYPE is not allowed"));
}

#[test]
fn text_that_is_not_utf8_names_its_line() {
    let mut bytes = receipt_fixture("camt053-clean.xml").1;
    let at = bytes.iter().position(|&b| b == b'>').expect("markup") + 1;
    bytes.insert(at, 0xFF);
    let message = parse_camt053("s.xml", &bytes, None).map(|_| ()).expect_err("invalid UTF-8");
    assert_eq!(message.to_string(), "s.xml: line 1: not valid UTF-8 text");
}

/// The clean fixture with its root element's start tag replaced, and every
/// element name given `prefix`.
fn with_root(start_tag: &str, prefix: &str) -> String {
    let text = receipt_text("camt053-clean.xml");
    let root = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">"#;
    let body = &text[text.find(root).expect("root") + root.len()..];
    let body = body.replace("</", "\u{1}").replace('<', &format!("<{prefix}")).replace('\u{1}', &format!("</{prefix}"));
    let body = body.replace(&format!("<{prefix}!--"), "<!--");
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{start_tag}{body}")
}

#[test]
fn the_namespace_is_resolved_whatever_the_attribute_order_or_prefix() {
    let ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001";
    let xsi = r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;
    let location = format!(r#"xsi:schemaLocation="{ns}.02 camt.053.001.02.xsd""#);
    for (start_tag, prefix) in [
        (format!(r#"<Document {xsi} xmlns="{ns}.08">"#), ""),
        (format!(r#"<Document {location} {xsi} xmlns="{ns}.02">"#), ""),
        (format!(r#"<Document xmlns="{ns}.13" {xsi}>"#), ""),
        (format!(r#"<ns2:Document {xsi} xmlns:ns2="{ns}.04">"#), "ns2:"),
        (format!(r#"<c:Document xmlns:c="{ns}.10" xmlns="urn:other">"#), "c:"),
    ] {
        let text = with_root(&start_tag, prefix);
        let statements = parse_text(&text).unwrap_or_else(|e| panic!("{start_tag}: {e}"));
        assert_eq!(statements[0].receipts.len(), 12, "{start_tag}");
    }
}

#[test]
fn another_namespace_or_version_is_refused() {
    let ns = "urn:iso:std:iso:20022:tech:xsd";
    let xsi = r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;
    for (start_tag, prefix, found) in [
        (format!(r#"<Document {xsi} xmlns="{ns}:camt.052.001.08">"#), "", "camt.052.001.08"),
        (format!(r#"<Document xmlns="{ns}:camt.053.001.14">"#), "", "camt.053.001.14"),
        (format!(r#"<Document xmlns="{ns}:camt.053.001.01">"#), "", "camt.053.001.01"),
        (format!(r#"<n:Document xmlns="{ns}:camt.053.001.08" xmlns:n="urn:other">"#), "n:", "urn:other"),
    ] {
        let message = error_of(&with_root(&start_tag, prefix));
        assert!(
            message.starts_with("statement.xml: /Document: expected the camt.053 or camt.054 namespace"),
            "{message}"
        );
        assert!(message.contains(found), "{message}");
    }
    let undeclared = with_root(r#"<ns2:Document>"#, "ns2:");
    assert!(error_of(&undeclared).contains("/Document: the prefix `ns2` is not declared"), "{}", error_of(&undeclared));
}

#[test]
fn a_document_cut_short_says_where_it_ends() {
    let text = receipt_text("camt053-clean.xml");
    let start = text.find("    <Stmt>").expect("Stmt");
    let end = text.find("</Stmt>").expect("end of Stmt") + "</Stmt>\n".len();
    let second = &text[start..end];
    // A whole statement, then a second one cut after an entry's amount.
    let cut = format!("{}{}", &text[..end], &second[..second.find("<NtryRef>3</NtryRef>").expect("entry 3")]);
    let line = cut.matches('\n').count() + 1;
    let message = error_of(&cut);
    assert_eq!(
        message,
        format!(
            "statement.xml: {}/Ntry[3]: the file ends early, at line {line} (byte {}), before `</Ntry>`",
            STMT.replace("Stmt[1]", "Stmt[2]"),
            cut.len()
        )
    );
    // A single statement cut short says the same, not that it has none.
    let single = &text[..text.find("<NtryRef>3</NtryRef>").expect("entry 3")];
    assert!(error_of(single).contains(&format!("{STMT}/Ntry[3]: the file ends early")), "{}", error_of(single));
    // Cut inside a tag.
    let in_tag = &text[..text.find("<NtryRef>3</NtryRef>").expect("entry 3") + 4];
    let message = error_of(in_tag);
    assert!(message.starts_with(&format!("statement.xml: {STMT}/Ntry[3]: the file ends early, at line ")), "{message}");
    assert!(message.contains("inside a tag"), "{message}");
    // Only the root left open.
    let root_open = &text[..text.find("</Document>").expect("end")];
    assert!(error_of(root_open).contains("/Document: the file ends early"), "{}", error_of(root_open));
}
