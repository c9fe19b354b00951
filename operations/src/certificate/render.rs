//! The certificate's document format: text or HTML for people, each with
//! the data block the visible part is rendered from, or the data block
//! alone; and, the other way, the data block found in a document.

use super::data::{Certificate, Entry};

const BEGIN: &str = "-----BEGIN YIBAO CERTIFICATE DATA-----";
const END: &str = "-----END YIBAO CERTIFICATE DATA-----";
const SCRIPT_OPEN: &str = r#"<script type="application/json" id="yibao-certificate-data">"#;
const SCRIPT_CLOSE: &str = "</script>";
/// Largest certificate document `verify` reads.
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// The forms a certificate is given in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Html,
    /// The data block alone.
    Json,
}

/// The certificate as a document in `format`.
pub fn render(data: &Certificate, format: Format) -> String {
    match format {
        Format::Text => render_text(data),
        Format::Html => render_html(data),
        Format::Json => format!("{}\n", data_json(data)),
    }
}

fn data_json(data: &Certificate) -> String {
    serde_json::to_string_pretty(data).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The human lines of a certificate: (label, value).
pub(super) fn lines(data: &Certificate) -> Vec<(String, String)> {
    let by = data.paid_by.iter().map(|(source, amount)| format!("{source} {amount}")).collect::<Vec<_>>().join(", ");
    vec![
        ("person".into(), format!("{}  {}", data.person, data.name)),
        ("region".into(), format!("{} {}", data.region, data.region_name)),
        ("coverage year".into(), data.coverage_year.to_string()),
        ("state".into(), format!("{} (已到账)", data.state)),
        ("premium due".into(), data.premium_due.to_string()),
        ("paid by".into(), by),
        ("refunded".into(), data.refunded.to_string()),
        ("net received".into(), data.net_received.to_string()),
        ("covered".into(), format!("{} until {}", data.covered_from, data.covered_until)),
    ]
}

fn entry_lines(entry: &Entry) -> (String, String) {
    let what = match entry.kind.as_str() {
        "proxy" => format!(
            "proxy {} {} from the employee personal account of {}, application {}",
            entry.amount,
            entry.at,
            entry.payer.as_deref().unwrap_or("?"),
            entry.reference
        ),
        "subsidy" => {
            let parts: Vec<String> = entry.parts.iter().map(|(f, a)| format!("{f} {a}")).collect();
            format!("subsidy {} {} group {} ({})", entry.amount, entry.at, entry.reference, parts.join(", "))
        }
        "refund" => format!(
            "refund {} {} of {}/{} to {}",
            entry.amount,
            entry.at,
            entry.channel,
            entry.reference,
            entry.source.replace('_', " ")
        ),
        _ => format!("{} {} {} via {} {}", entry.source, entry.amount, entry.at, entry.channel, entry.reference),
    };
    let mut place = format!("log position {} SM3 {}", entry.position, entry.hash);
    if let (Some(position), Some(hash)) = (entry.application_position, &entry.application_hash) {
        place.push_str(&format!("; application at position {position} SM3 {hash}"));
    }
    (what, place)
}

fn render_text(data: &Certificate) -> String {
    let mut out = String::new();
    out.push_str("参保缴费证明 · Payment certificate\n");
    out.push_str("城乡居民基本医疗保险 (urban-rural resident basic medical insurance)\n\n");
    for (label, value) in lines(data) {
        out.push_str(&format!("{label:<15} {value}\n"));
    }
    out.push_str("\npayments, each with the log position and SM3 hash of its fact:\n");
    for entry in &data.payments {
        let (what, place) = entry_lines(entry);
        out.push_str(&format!("  {what}\n    {place}\n"));
    }
    out.push_str(&format!(
        "\nissued {} from ledger {} at log position {}, head SM3 {}\n",
        data.issued_at, data.ledger_id, data.head_position, data.head_hash
    ));
    out.push_str("check it against the ledger: yibao certificate verify FILE\n");
    if let Some(line) = signed_line(data) {
        out.push_str(&format!("{line}\n"));
    }
    out.push('\n');
    out.push_str(&format!("{BEGIN}\n{}\n{END}\n", data_json(data)));
    out
}

/// A certificate with proofs says how to check it without the ledger.
fn signed_line(data: &Certificate) -> Option<String> {
    let head = &data.proofs.as_ref()?.signed_head;
    Some(format!(
        "signed by key {} over the log's Merkle tree of size {}, root {}; check it without the ledger: yibao \
         certificate verify FILE --public-key KEY",
        head.key_id, head.tree_size, head.root
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render_html(data: &Certificate) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<title>参保缴费证明 {} {}</title>\n</head>\n<body>\n",
        escape(&data.person),
        data.coverage_year
    ));
    out.push_str("<h1>参保缴费证明 · Payment certificate</h1>\n<p>城乡居民基本医疗保险</p>\n<table>\n");
    for (label, value) in lines(data) {
        out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(&label), escape(&value)));
    }
    out.push_str("</table>\n<h2>payments</h2>\n<ul>\n");
    for entry in &data.payments {
        let (what, place) = entry_lines(entry);
        out.push_str(&format!("<li>{}<br><small>{}</small></li>\n", escape(&what), escape(&place)));
    }
    out.push_str(&format!(
        "</ul>\n<p>issued {} from ledger {} at log position {}, head SM3 {}</p>\n",
        escape(&data.issued_at),
        escape(&data.ledger_id),
        data.head_position,
        escape(&data.head_hash)
    ));
    if let Some(line) = signed_line(data) {
        out.push_str(&format!("<p>{}</p>\n", escape(&line)));
    }
    // `<` never appears raw inside the script element, so `</script>` in a
    // name cannot end it.
    out.push_str(&format!("{SCRIPT_OPEN}\n{}\n{SCRIPT_CLOSE}\n", data_json(data).replace('<', "\\u003c")));
    out.push_str("</body>\n</html>\n");
    out
}

/// The data block of a certificate document, and the format it was in: a
/// document that is JSON is the data block alone.
pub(super) fn extract(text: &str) -> Option<(Format, &str)> {
    if text.trim_start().starts_with('{') {
        return Some((Format::Json, text));
    }
    if let Some(start) = text.find(SCRIPT_OPEN) {
        let rest = &text[start + SCRIPT_OPEN.len()..];
        let end = rest.find(SCRIPT_CLOSE)?;
        return Some((Format::Html, &rest[..end]));
    }
    let start = text.find(BEGIN)?;
    let rest = &text[start + BEGIN.len()..];
    let end = rest.find(END)?;
    Some((Format::Text, &rest[..end]))
}

/// The part people read: everything before the data block.
pub(super) fn printed_part(text: &str, format: Format) -> &str {
    let marker = match format {
        Format::Html => SCRIPT_OPEN,
        Format::Text => BEGIN,
        Format::Json => return "",
    };
    text.find(marker).map_or(text, |end| &text[..end])
}
