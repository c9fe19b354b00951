//! ISO 20022 camt.053 (BankToCustomerStatement) and camt.054
//! (BankToCustomerDebitCreditNotification), read as a stream with quick-xml.
//! A camt.054 notification (`Ntfctn`) is read as a statement without
//! balances: its entries are the same `Ntry` as a statement's. Any message version (`camt.053.001.02` to `.13`): elements are
//! matched by local name, and both the old (`AmtDtls/TxAmt/Amt`,
//! `Dbtr/Id`) and new (`TxDtls/Amt`, `Dbtr/Pty/Id`) shapes are read.
//!
//! Every error names the XML path of the element, e.g.
//! `/Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`.

use crate::error::{Errors, Location, ReconcileError, Result};
use crate::model::{Balance, Balances, ControlTotal, Direction, Period, Receipt, Statement};
use crate::text;
use ledger::{Date, Money};
use quick_xml::errors::SyntaxError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::sync::Arc;

/// Deepest element nesting read.
const MAX_DEPTH: usize = 64;
/// Most `TxDtls` in one entry.
const MAX_PARTS: usize = 100_000;
/// `EndToEndId` of a payment that had none (ISO 20022 usage rule).
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// Elements whose position among their siblings is shown in paths.
const INDEXED: [&str; 6] = ["Stmt", "Bal", "Ntry", "NtryDtls", "TxDtls", "Ntfctn"];
/// The message elements read, and the statement element each holds.
const MESSAGES: [(&str, &str); 2] = [("BkToCstmrStmt", "Stmt"), ("BkToCstmrDbtCdtNtfctn", "Ntfctn")];

/// Parses a camt.053 document into its statements. `channel` is the payment
/// channel of every entry when the account serves one channel only; `None`
/// lets matching look references up in every channel.
pub fn parse_camt053(file: &str, bytes: &[u8], channel: Option<&str>) -> Result<Vec<Statement>> {
    let errors = Errors { file };
    let text = text::decode(errors, bytes, text::Encoding::Utf8)?;
    let mut parser = Parser {
        errors,
        file: Arc::from(file),
        channel: channel.map(str::to_string),
        names: String::new(),
        frames: Vec::new(),
        text: String::new(),
        leaf: true,
        currency: None,
        seen_root: false,
        notification: false,
        statements: Vec::new(),
        stmt: None,
        bal: None,
        entry: None,
        tx: None,
        n_receipts: 0,
    };
    // A byte order mark is not part of `text`; offsets in messages count it.
    let skipped = bytes.len() - text.len();
    let mut reader = NsReader::from_str(&text);
    reader.config_mut().expand_empty_elements = true;
    loop {
        let (namespace, event) = match reader.read_resolved_event() {
            Ok((resolved, event)) => (ElementNamespace::of(&resolved, &event, parser.frames.is_empty()), event),
            Err(error) => return Err(parser.xml_error(&error, &text, reader.error_position(), skipped)),
        };
        match event {
            Event::Start(start) => parser.start(&start, namespace)?,
            // Not produced with `expand_empty_elements`, handled all the same.
            Event::Empty(start) => {
                parser.start(&start, namespace)?;
                parser.end()?;
            }
            Event::End(_) => parser.end()?,
            Event::Text(content) => {
                let content = content.xml10_content().map_err(|e| parser.malformed(&e.to_string()))?;
                parser.push_text(&content)?;
            }
            Event::CData(content) => {
                let content = content.xml10_content().map_err(|e| parser.malformed(&e.to_string()))?;
                parser.push_text(&content)?;
            }
            Event::GeneralRef(reference) => parser.general_ref(&reference)?,
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding() {
                    if !encoding.eq_ignore_ascii_case(b"utf-8") {
                        let found = String::from_utf8_lossy(&encoding).into_owned();
                        return Err(errors.invalid(Location::Xml("/".into()), "encoding UTF-8", found));
                    }
                }
            }
            Event::DocType(_) => return Err(parser.malformed("a DOCTYPE is not allowed in a statement")),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !parser.frames.is_empty() {
        // quick-xml ends quietly with elements open: a cut file would
        // otherwise pass for its complete statements.
        let open = parser.name(parser.frames.len() - 1).to_string();
        return Err(parser.ends_early(&text, text.len(), skipped, &format!("before `</{open}>`")));
    }
    parser.finish()
}

/// The namespace of an element as far as it is checked: the root's must be
/// camt.053's, and no element may use an undeclared prefix.
enum ElementNamespace {
    /// Not an element, or an element whose namespace is not checked.
    Unchecked,
    /// The root element without a namespace (accepted, as before namespaces
    /// were checked).
    Unbound,
    /// The root element's namespace URI.
    Bound(String),
    /// A prefix with no declaration in scope.
    Undeclared(String),
}

impl ElementNamespace {
    fn of(resolved: &ResolveResult<'_>, event: &Event<'_>, is_root: bool) -> ElementNamespace {
        if !matches!(event, Event::Start(_) | Event::Empty(_)) {
            return ElementNamespace::Unchecked;
        }
        match resolved {
            ResolveResult::Unknown(prefix) => {
                ElementNamespace::Undeclared(String::from_utf8_lossy(prefix).into_owned())
            }
            ResolveResult::Bound(namespace) if is_root => {
                ElementNamespace::Bound(String::from_utf8_lossy(namespace.as_ref()).into_owned())
            }
            ResolveResult::Unbound if is_root => ElementNamespace::Unbound,
            _ => ElementNamespace::Unchecked,
        }
    }
}

/// Whether a namespace URI is that of a camt.053 or camt.054 version read
/// (`urn:iso:std:iso:20022:tech:xsd:camt.053.001.02` to `.13`).
fn is_camt053_namespace(namespace: &str) -> bool {
    let version = ["camt.053.001.", "camt.054.001."]
        .iter()
        .find_map(|message| namespace.strip_prefix("urn:iso:std:iso:20022:tech:xsd:")?.strip_prefix(message));
    let Some(version) = version else {
        return false;
    };
    version.len() == 2 && version.parse::<u8>().is_ok_and(|v| (2..=13).contains(&v))
}

struct Frame {
    /// End of this element's name in `Parser::names`.
    name_end: usize,
    /// Position among same-named siblings (1-based), 0 when not shown.
    index: u32,
    /// Counts of the indexed children seen so far, by `INDEXED` order.
    child_counts: [u32; 6],
}

#[derive(Default)]
struct StmtBuilder {
    path: String,
    id: Option<String>,
    account: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    control_totals: Vec<ControlTotal>,
    receipts: Vec<Receipt>,
}

#[derive(Default)]
struct BalBuilder {
    path: String,
    code: Option<String>,
    amount: Option<Money>,
    direction: Option<Direction>,
}

#[derive(Default)]
struct EntryBuilder {
    path: String,
    amount: Option<Money>,
    direction: Option<Direction>,
    reversal: bool,
    booked_on: Option<Date>,
    acct_svcr_ref: Option<String>,
    additional_info: Option<String>,
    txs: Vec<TxBuilder>,
}

#[derive(Default)]
struct TxBuilder {
    path: String,
    end_to_end_id: Option<String>,
    acct_svcr_ref: Option<String>,
    tx_id: Option<String>,
    amount: Option<Money>,
    tx_amount: Option<Money>,
    direction: Option<Direction>,
    debtor_id: Option<String>,
    creditor_id: Option<String>,
    remittance: Option<String>,
}

struct Parser<'f> {
    errors: Errors<'f>,
    file: Arc<str>,
    channel: Option<String>,
    /// The names of the open elements, one after another.
    names: String,
    frames: Vec<Frame>,
    /// Text of the innermost open element.
    text: String,
    /// Whether the innermost open element has had no child element.
    leaf: bool,
    /// `Ccy` of the innermost open `Amt`.
    currency: Option<String>,
    seen_root: bool,
    /// The message is a camt.054 notification.
    notification: bool,
    statements: Vec<Statement>,
    stmt: Option<StmtBuilder>,
    bal: Option<BalBuilder>,
    entry: Option<EntryBuilder>,
    tx: Option<TxBuilder>,
    n_receipts: u32,
}

impl Parser<'_> {
    /// `Stmt` in a statement message, `Ntfctn` in a notification.
    fn is_statement_element(&self, name: &str) -> bool {
        self.frames.len() > 1 && MESSAGES.iter().any(|&(message, element)| message == self.name(1) && element == name)
    }

    /// Whether the message is a camt.054 notification.
    fn is_notification(&self) -> bool {
        self.frames.len() > 1 && self.name(1) == MESSAGES[1].0
    }

    fn name(&self, depth: usize) -> &str {
        let start = if depth == 0 { 0 } else { self.frames[depth - 1].name_end };
        &self.names[start..self.frames[depth].name_end]
    }

    /// The path of the open elements, `/Document/BkToCstmrStmt/Stmt[1]/…`.
    fn path(&self) -> String {
        let mut path = String::new();
        for (depth, frame) in self.frames.iter().enumerate() {
            path.push('/');
            path.push_str(self.name(depth));
            if frame.index > 0 {
                path.push_str(&format!("[{}]", frame.index));
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    fn here(&self) -> Location {
        Location::Xml(self.path())
    }

    fn malformed(&self, reason: &str) -> ReconcileError {
        self.errors.malformed(self.here(), reason)
    }

    /// A quick-xml error at `offset` of `text`. Markup left open at the end
    /// of the input means the file was cut.
    fn xml_error(&self, error: &quick_xml::Error, text: &str, offset: u64, skipped: usize) -> ReconcileError {
        if let quick_xml::Error::Syntax(syntax) = error {
            let inside = match syntax {
                SyntaxError::UnclosedTag => "a tag",
                SyntaxError::UnclosedComment => "a comment",
                SyntaxError::UnclosedCData => "a CDATA section",
                SyntaxError::UnclosedDoctype => "a DOCTYPE",
                SyntaxError::UnclosedPIOrXmlDecl => "a processing instruction",
                SyntaxError::InvalidBangMarkup => "markup beginning `<!`",
            };
            let begun = offset.saturating_add(skipped as u64);
            return self.ends_early(text, text.len(), skipped, &format!("inside {inside} begun at byte {begun}"));
        }
        let offset = offset.saturating_add(skipped as u64);
        self.errors.malformed(
            Location::Xml(format!("{} (byte {offset})", self.path())),
            format!("not well-formed XML: {error}"),
        )
    }

    /// The file ends at `end` of `text` with elements (or markup) still open.
    fn ends_early(&self, text: &str, end: usize, skipped: usize, what: &str) -> ReconcileError {
        let line = text::line_of(text.as_bytes(), end);
        self.malformed(&format!("the file ends early, at line {line} (byte {}), {what}", end + skipped))
    }

    fn invalid(&self, expected: &str, found: &str) -> ReconcileError {
        self.errors.invalid(self.here(), expected, found)
    }

    fn start(&mut self, start: &BytesStart<'_>, namespace: ElementNamespace) -> Result<()> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(self.errors.limit(self.here(), "element depth", MAX_DEPTH));
        }
        let local = start.local_name();
        let name = std::str::from_utf8(local.as_ref()).map_err(|_| self.malformed("element name is not UTF-8"))?;
        let index = match (INDEXED.iter().position(|&n| n == name), self.frames.last_mut()) {
            (Some(slot), Some(parent)) => {
                parent.child_counts[slot] += 1;
                parent.child_counts[slot]
            }
            _ => 0,
        };
        self.names.push_str(name);
        self.frames.push(Frame { name_end: self.names.len(), index, child_counts: [0; 6] });
        self.text.clear();
        self.leaf = true;
        self.currency = None;
        if name == "Amt" {
            let currency = start
                .try_get_attribute("Ccy")
                .map_err(|e| self.malformed(&format!("bad attribute: {e}")))?
                .map(|attribute| attribute.unescape_value().map(|v| v.into_owned()))
                .transpose()
                .map_err(|e| self.malformed(&format!("bad attribute: {e}")))?;
            self.currency = Some(currency.unwrap_or_default());
        }
        if let ElementNamespace::Undeclared(prefix) = &namespace {
            return Err(self.malformed(&format!("the prefix `{prefix}` is not declared")));
        }
        if self.frames.len() == 1 {
            self.check_root(namespace)?;
        }
        self.open_builder()
    }

    fn check_root(&mut self, namespace: ElementNamespace) -> Result<()> {
        if self.name(0) != "Document" {
            return Err(self.invalid("a camt.053 `Document` root element", self.name(0)));
        }
        if let ElementNamespace::Bound(namespace) = namespace {
            if !is_camt053_namespace(&namespace) {
                return Err(self.invalid(
                    "the camt.053 or camt.054 namespace (urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 to .13)",
                    &namespace,
                ));
            }
        }
        self.seen_root = true;
        Ok(())
    }

    /// Starts collecting a statement, balance, entry or transaction when one opens.
    fn open_builder(&mut self) -> Result<()> {
        let depth = self.frames.len();
        if depth == 2 && !MESSAGES.iter().any(|(message, _)| *message == self.name(1)) {
            return Err(self.invalid(
                "`BkToCstmrStmt` or `BkToCstmrDbtCdtNtfctn` (a camt.053 statement or camt.054 notification)",
                self.name(1),
            ));
        }
        if depth == 2 {
            self.notification = self.is_notification();
        }
        let name = self.name(depth - 1);
        match (depth, name) {
            (3, _) if self.is_statement_element(name) => {
                self.stmt = Some(StmtBuilder { path: self.path(), ..StmtBuilder::default() })
            }
            (4, "Bal") if self.stmt.is_some() => {
                self.bal = Some(BalBuilder { path: self.path(), ..BalBuilder::default() })
            }
            (4, "Ntry") if self.stmt.is_some() => {
                self.entry = Some(EntryBuilder { path: self.path(), ..EntryBuilder::default() })
            }
            (6, "TxDtls") if self.entry.is_some() && self.name(4) == "NtryDtls" => {
                let n_txs = self.entry.as_ref().map_or(0, |e| e.txs.len());
                if n_txs >= MAX_PARTS {
                    return Err(self.errors.limit(self.here(), "TxDtls in one entry", MAX_PARTS));
                }
                self.tx = Some(TxBuilder { path: self.path(), ..TxBuilder::default() });
            }
            _ => {}
        }
        Ok(())
    }

    fn push_text(&mut self, content: &str) -> Result<()> {
        if self.text.len() + content.len() > text::MAX_FREE_TEXT_BYTES {
            if content.trim().is_empty() {
                return Ok(());
            }
            return Err(self.errors.limit(self.here(), "text of one element in bytes", text::MAX_FREE_TEXT_BYTES));
        }
        self.text.push_str(content);
        Ok(())
    }

    fn general_ref(&mut self, reference: &BytesRef<'_>) -> Result<()> {
        let resolved = match reference.resolve_char_ref() {
            Ok(Some(c)) => c.to_string(),
            Ok(None) => {
                let name = reference.decode().map_err(|e| self.malformed(&e.to_string()))?;
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(text) => text.to_string(),
                    None => return Err(self.invalid("a predefined XML entity (&amp; &lt; &gt; &quot; &apos;)", &name)),
                }
            }
            Err(e) => return Err(self.malformed(&format!("bad character reference: {e}"))),
        };
        self.push_text(&resolved)
    }

    fn end(&mut self) -> Result<()> {
        let depth = self.frames.len();
        if depth == 0 {
            return Err(self.malformed("an end tag without a start tag"));
        }
        if self.leaf {
            self.leaf_value(depth)?;
        }
        self.close_builder(depth)?;
        self.frames.pop();
        self.names.truncate(self.frames.last().map_or(0, |frame| frame.name_end));
        self.text.clear();
        self.leaf = false;
        Ok(())
    }

    /// The names of the open elements below `anchor` (exclusive), at most 8.
    fn relative(&self, anchor: usize) -> Option<Vec<&str>> {
        let depth = self.frames.len();
        if depth <= anchor + 1 || depth - anchor - 1 > 8 {
            return None;
        }
        Some(((anchor + 1)..depth).map(|d| self.name(d)).collect())
    }

    fn leaf_value(&mut self, depth: usize) -> Result<()> {
        if self.tx.is_some() && depth > 6 {
            return self.tx_field();
        }
        if self.entry.is_some() && depth > 4 {
            return self.entry_field();
        }
        if self.bal.is_some() && depth > 4 {
            return self.bal_field();
        }
        if self.stmt.is_some() && depth > 3 {
            return self.stmt_field();
        }
        Ok(())
    }

    fn stmt_field(&mut self) -> Result<()> {
        let Some(rel) = self.relative(2) else { return Ok(()) };
        let value = self.text.trim().to_string();
        let field = match rel.as_slice() {
            ["Id"] => StmtField::Id,
            ["Acct", "Id", "IBAN"] | ["Acct", "Id", "Othr", "Id"] => StmtField::Account,
            ["FrToDt", "FrDtTm"] | ["FrToDt", "FrDt"] => StmtField::From,
            ["FrToDt", "ToDtTm"] | ["FrToDt", "ToDt"] => StmtField::To,
            _ => return Ok(()),
        };
        match field {
            StmtField::Id => self.stmt_mut().id = self.reference(&value)?,
            StmtField::Account => self.stmt_mut().account = self.reference(&value)?,
            StmtField::From => self.stmt_mut().from = Some(self.date(&value)?),
            StmtField::To => self.stmt_mut().to = Some(self.date(&value)?),
        }
        Ok(())
    }

    fn stmt_mut(&mut self) -> &mut StmtBuilder {
        self.stmt.as_mut().expect("stmt fields are read inside a Stmt")
    }

    fn bal_field(&mut self) -> Result<()> {
        let Some(rel) = self.relative(3) else { return Ok(()) };
        let value = self.text.trim().to_string();
        match rel.as_slice() {
            ["Tp", "CdOrPrtry", "Cd"] => self.bal_mut().code = Some(value),
            ["Amt"] => {
                let amount = self.amount(&value)?;
                self.bal_mut().amount = Some(amount);
            }
            ["CdtDbtInd"] => {
                let direction = self.direction(&value)?;
                self.bal_mut().direction = Some(direction);
            }
            ["Dt", "Dt"] | ["Dt", "DtTm"] => {
                self.date(&value)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn bal_mut(&mut self) -> &mut BalBuilder {
        self.bal.as_mut().expect("balance fields are read inside a Bal")
    }

    fn entry_field(&mut self) -> Result<()> {
        let Some(rel) = self.relative(3) else { return Ok(()) };
        let value = self.text.trim().to_string();
        match rel.as_slice() {
            ["Amt"] => {
                let amount = self.amount(&value)?;
                self.entry_mut().amount = Some(amount);
            }
            ["CdtDbtInd"] => {
                let direction = self.direction(&value)?;
                self.entry_mut().direction = Some(direction);
            }
            ["RvslInd"] => {
                let reversal = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(self.invalid("`true` or `false`", &value)),
                };
                self.entry_mut().reversal = reversal;
            }
            ["Sts"] | ["Sts", "Cd"] if value != "BOOK" => {
                return Err(self.invalid("status BOOK (a statement reports booked entries)", &value));
            }
            ["BookgDt", "Dt"] | ["BookgDt", "DtTm"] => {
                let date = self.date(&value)?;
                self.entry_mut().booked_on = Some(date);
            }
            ["ValDt", "Dt"] | ["ValDt", "DtTm"] => {
                self.date(&value)?;
            }
            ["AcctSvcrRef"] => self.entry_mut().acct_svcr_ref = self.reference(&value)?,
            ["AddtlNtryInf"] => self.entry_mut().additional_info = Some(value),
            _ => {}
        }
        Ok(())
    }

    fn entry_mut(&mut self) -> &mut EntryBuilder {
        self.entry.as_mut().expect("entry fields are read inside an Ntry")
    }

    fn tx_field(&mut self) -> Result<()> {
        let Some(rel) = self.relative(5) else { return Ok(()) };
        let value = self.text.trim().to_string();
        match rel.as_slice() {
            ["Refs", "EndToEndId"] => self.tx_mut().end_to_end_id = self.reference(&value)?,
            ["Refs", "AcctSvcrRef"] => self.tx_mut().acct_svcr_ref = self.reference(&value)?,
            ["Refs", "TxId"] => self.tx_mut().tx_id = self.reference(&value)?,
            ["Amt"] => {
                let amount = self.amount(&value)?;
                self.tx_mut().amount = Some(amount);
            }
            ["AmtDtls", "TxAmt", "Amt"] => {
                let amount = self.amount(&value)?;
                self.tx_mut().tx_amount = Some(amount);
            }
            ["CdtDbtInd"] => {
                let direction = self.direction(&value)?;
                self.tx_mut().direction = Some(direction);
            }
            ["RltdPties", "Dbtr", "Id", "PrvtId", "Othr", "Id"]
            | ["RltdPties", "Dbtr", "Pty", "Id", "PrvtId", "Othr", "Id"] => {
                self.tx_mut().debtor_id = self.identity(&value)?;
            }
            ["RltdPties", "Cdtr", "Id", "PrvtId", "Othr", "Id"]
            | ["RltdPties", "Cdtr", "Pty", "Id", "PrvtId", "Othr", "Id"] => {
                self.tx_mut().creditor_id = self.identity(&value)?;
            }
            ["RmtInf", "Ustrd"] => {
                let tx = self.tx_mut();
                match &mut tx.remittance {
                    Some(text) => {
                        text.push(' ');
                        text.push_str(&value);
                    }
                    None => tx.remittance = Some(value),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn tx_mut(&mut self) -> &mut TxBuilder {
        self.tx.as_mut().expect("transaction fields are read inside a TxDtls")
    }

    fn amount(&self, value: &str) -> Result<Money> {
        match self.currency.as_deref() {
            Some("CNY") => {}
            Some(other) => {
                let path = format!("{}/@Ccy", self.path());
                return Err(self.errors.invalid(Location::Xml(path), "currency CNY", other));
            }
            None => return Err(self.malformed("an amount outside an `Amt` element")),
        }
        text::parse_amount(value, '.', false).map(|(_, money)| money).map_err(|expected| self.invalid(&expected, value))
    }

    fn direction(&self, value: &str) -> Result<Direction> {
        match value {
            "CRDT" => Ok(Direction::Credit),
            "DBIT" => Ok(Direction::Debit),
            _ => Err(self.invalid("CRDT or DBIT", value)),
        }
    }

    fn date(&self, value: &str) -> Result<Date> {
        text::parse_business_date(value, None).map_err(|expected| self.invalid(&expected, value))
    }

    fn reference(&self, value: &str) -> Result<Option<String>> {
        text::reference(value).map_err(|expected| self.invalid(&expected, value))
    }

    fn identity(&self, value: &str) -> Result<Option<String>> {
        Ok(self.reference(value)?.map(|id| text::find_identity(&id).unwrap_or_else(|| id.to_ascii_uppercase())))
    }

    /// Completes a statement, balance, entry or transaction when it closes.
    fn close_builder(&mut self, depth: usize) -> Result<()> {
        match (depth, self.name(depth - 1)) {
            (6, "TxDtls") => {
                if let (Some(tx), Some(entry)) = (self.tx.take(), self.entry.as_mut()) {
                    entry.txs.push(tx);
                }
            }
            (4, "Ntry") => {
                if let Some(entry) = self.entry.take() {
                    let receipt = self.finish_entry(entry)?;
                    self.stmt_mut().receipts.push(receipt);
                }
            }
            (4, "Bal") => {
                if let Some(bal) = self.bal.take() {
                    self.finish_balance(bal)?;
                }
            }
            (3, name) if self.is_statement_element(name) => {
                if let Some(stmt) = self.stmt.take() {
                    let statement = self.finish_statement(stmt)?;
                    self.statements.push(statement);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn missing(&self, path: &str, what: &str) -> ReconcileError {
        self.errors.invalid(Location::Xml(path.to_string()), what, "")
    }

    fn finish_balance(&mut self, bal: BalBuilder) -> Result<()> {
        let code = bal.code.clone().ok_or_else(|| self.missing(&bal.path, "a balance type in Tp/CdOrPrtry/Cd"))?;
        if !matches!(code.as_str(), "OPBD" | "PRCD" | "CLBD") {
            return Ok(());
        }
        let amount = bal.amount.ok_or_else(|| self.missing(&bal.path, "an Amt"))?;
        let direction = bal.direction.ok_or_else(|| self.missing(&bal.path, "a CdtDbtInd"))?;
        let balance = Balance { amount, direction, at: Location::Xml(bal.path) };
        let stmt = self.stmt_mut();
        match code.as_str() {
            "CLBD" => stmt.closing = Some(balance),
            // OPBD wins over PRCD (the previous closing) when both are given.
            "OPBD" => stmt.opening = Some(balance),
            _ => {
                stmt.opening.get_or_insert(balance);
            }
        }
        Ok(())
    }

    fn finish_statement(&mut self, stmt: StmtBuilder) -> Result<Statement> {
        let balances = match (stmt.opening, stmt.closing) {
            (Some(opening), Some(closing)) => Some(Balances { opening, closing }),
            // A notification reports entries, not balances.
            (None, None) if self.is_notification() => None,
            _ => return Err(self.missing(&stmt.path, "balances OPBD (or PRCD) and CLBD")),
        };
        let period = match (stmt.from, stmt.to) {
            (Some(from), Some(to)) => Some(Period { from, to }),
            (None, None) => None,
            _ => return Err(self.missing(&format!("{}/FrToDt", stmt.path), "both FrDtTm and ToDtTm")),
        };
        Ok(Statement {
            file: self.file.clone(),
            at: Location::Xml(stmt.path),
            id: stmt.id,
            account: stmt.account,
            period,
            balances,
            control_totals: stmt.control_totals,
            receipts: stmt.receipts,
            not_received: Vec::new(),
        })
    }

    fn finish_entry(&mut self, entry: EntryBuilder) -> Result<Receipt> {
        let amount = entry.amount.ok_or_else(|| self.missing(&entry.path, "an Amt"))?;
        let direction = entry.direction.ok_or_else(|| self.missing(&entry.path, "a CdtDbtInd"))?;
        let booked_on = entry.booked_on.ok_or_else(|| self.missing(&entry.path, "a BookgDt"))?;
        let seq = self.n_receipts;
        self.n_receipts =
            seq.checked_add(1).ok_or_else(|| self.errors.limit(self.here(), "entries", u32::MAX as usize))?;
        let mut receipt = Receipt {
            file: self.file.clone(),
            at: Location::Xml(entry.path.clone()),
            seq,
            channel: self.channel.clone(),
            reference: entry.acct_svcr_ref.clone(),
            original_reference: None,
            amount,
            direction,
            reversal: entry.reversal,
            booked_on,
            payer_id: entry.additional_info.as_deref().and_then(text::find_identity),
            payer_name: None,
            settlement_ref: entry.acct_svcr_ref.clone(),
            parts: Vec::new(),
        };
        match entry.txs.len() {
            0 => {}
            1 => self.single_transaction(&mut receipt, &entry.txs[0]),
            _ => self.batch(&mut receipt, entry.txs)?,
        }
        if receipt.reversal && receipt.direction == Direction::Debit {
            // A reversed credit names the payment it undoes.
            receipt.original_reference = receipt.reference.clone();
        }
        Ok(receipt)
    }

    fn single_transaction(&mut self, receipt: &mut Receipt, tx: &TxBuilder) {
        if let Some(reference) = tx_reference(tx) {
            receipt.reference = Some(reference);
        }
        if let Some(payer) = tx_payer(tx, receipt.direction) {
            receipt.payer_id = Some(payer);
        }
        if let Some(amount) = tx.amount.or(tx.tx_amount) {
            self.stmt_mut().control_totals.push(ControlTotal {
                what: "TxDtls amount against the entry amount".into(),
                at: Location::Xml(tx.path.clone()),
                declared: i128::from(receipt.amount.fen()),
                computed: i128::from(amount.fen()),
                is_count: false,
            });
        }
    }

    /// An entry settling several payments: its parts are its `TxDtls`.
    fn batch(&mut self, receipt: &mut Receipt, txs: Vec<TxBuilder>) -> Result<()> {
        let mut sum_fen: i128 = 0;
        for tx in txs {
            let amount = tx
                .amount
                .or(tx.tx_amount)
                .ok_or_else(|| self.missing(&tx.path, "an Amt in each TxDtls of a batched entry"))?;
            let direction = tx.direction.unwrap_or(receipt.direction);
            if direction != receipt.direction {
                return Err(self.errors.invalid(
                    Location::Xml(format!("{}/CdtDbtInd", tx.path)),
                    "the entry's CdtDbtInd in each of its TxDtls",
                    if direction == Direction::Credit { "CRDT" } else { "DBIT" },
                ));
            }
            sum_fen += i128::from(amount.fen());
            let reference = tx_reference(&tx);
            receipt.parts.push(Receipt {
                file: self.file.clone(),
                at: Location::Xml(tx.path.clone()),
                seq: receipt.seq,
                channel: receipt.channel.clone(),
                original_reference: if receipt.reversal && direction == Direction::Debit {
                    reference.clone()
                } else {
                    None
                },
                reference,
                amount,
                direction,
                reversal: receipt.reversal,
                booked_on: receipt.booked_on,
                payer_id: tx_payer(&tx, direction),
                payer_name: None,
                settlement_ref: receipt.settlement_ref.clone(),
                parts: Vec::new(),
            });
        }
        self.stmt_mut().control_totals.push(ControlTotal {
            what: "entry amount against the sum of its TxDtls".into(),
            at: receipt.at.clone(),
            declared: i128::from(receipt.amount.fen()),
            computed: sum_fen,
            is_count: false,
        });
        Ok(())
    }

    fn finish(self) -> Result<Vec<Statement>> {
        if !self.seen_root {
            return Err(self.errors.invalid(Location::Xml("/".into()), "a camt.053 `Document`", ""));
        }
        if self.statements.is_empty() {
            let (message, element) = if self.notification { MESSAGES[1] } else { MESSAGES[0] };
            let at = Location::Xml(format!("/Document/{message}"));
            return Err(self.errors.invalid(at, format!("at least one {element}"), ""));
        }
        Ok(self.statements)
    }
}

enum StmtField {
    Id,
    Account,
    From,
    To,
}

/// A transaction's payment reference: its end-to-end id unless the payer
/// gave none, else the bank's references.
fn tx_reference(tx: &TxBuilder) -> Option<String> {
    tx.end_to_end_id
        .clone()
        .filter(|id| id != NOT_PROVIDED)
        .or_else(|| tx.acct_svcr_ref.clone())
        .or_else(|| tx.tx_id.clone())
}

/// Who paid (a credit's debtor) or who is paid back (a debit's creditor), or
/// an identity number in the remittance information.
fn tx_payer(tx: &TxBuilder, direction: Direction) -> Option<String> {
    let party = match direction {
        Direction::Credit => &tx.debtor_id,
        Direction::Debit => &tx.creditor_id,
    };
    party.clone().or_else(|| tx.remittance.as_deref().and_then(text::find_identity))
}
