//! The office page end to end: the real `yibao serve` with the demo ledger,
//! driven by headless Chromium (`--dump-dom`). Without `chromium` on PATH
//! the test says so loudly and skips, except under CI (`CI=true`), where it
//! fails; `.ci/run` installs Chromium on a fresh machine.

use std::path::Path;
use std::process::Command;

mod common;

use common::server::{cli, Server};
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
const OFFICE: &str = "office-token-0123456789";
const PERSON: &str = "520502198503121233";
/// The demo's employee and his mother, whose 2025 premium his account paid.
const HOLDER: &str = "520502197811204159";
const MOTHER: &str = "520502195205085226";
/// The same number with a wrong check character.
const INVALID: &str = "520502198503121234";

fn start(data: &Path) -> Server {
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{FIXTURES}/policies/bijie-2025.toml")]);
    cli(data, &["import", &format!("{FIXTURES}/demo/facts.jsonl")]);
    // A proxy application still in flight for the demo employee's mother.
    cli(
        data,
        &[
            "family",
            "apply",
            "--holder",
            HOLDER,
            "--member",
            MOTHER,
            "--year",
            "2026",
            "--amount",
            "400",
            "--id",
            "WEB-1",
            "--at",
            "2025-10-01 10:00:00",
        ],
    );
    common::server::spawn(
        data,
        &format!(
            "[[token]]
name = \"office-1\"
token = \"{OFFICE}\"
role = \"office\"
"
        ),
        &[],
    )
}

/// The page's DOM after its scripts ran, as headless Chromium sees it.
fn dump_dom(url: &str, profile: &Path) -> String {
    let output = Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The text of the element with `id="error"`, if it is shown.
fn error_box(dom: &str) -> Option<String> {
    let start = dom.find("id=\"error\"")?;
    let open_end = start + dom[start..].find('>')?;
    if dom[start..open_end].contains("hidden") {
        return None;
    }
    let close = open_end + dom[open_end..].find("</div>")?;
    Some(dom[open_end + 1..close].to_string())
}

#[test]
fn the_office_page_shows_coverage_history_and_errors_in_a_browser() {
    let install = "Debian/Ubuntu: `apt-get install chromium`; `.ci/run` does this on a fresh machine";
    if !common::outside::available("chromium", "the office page test (tests/web.rs)", install) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir.path().join("data"));
    let profile = dir.path().join("chromium-profile");

    // The page and its assets load without a token.
    let page = ureq::get(&format!("http://{}/", server.addr)).call().expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page.content_type().starts_with("text/html"));

    let dom = dump_dom(&format!("http://{}/?id={PERSON}&token={OFFICE}", server.addr), &profile);
    assert_eq!(error_box(&dom), None, "the page shows an error:\n{dom}");
    assert!(dom.contains("data-state=\"received\""), "no received state on the card:\n{dom}");
    assert!(dom.contains("已到账 received"), "the state is not spelled out:\n{dom}");
    assert!(dom.contains("张伟"), "the person's name is missing:\n{dom}");
    assert!(dom.contains("520502********1233"), "the masked ID is missing:\n{dom}");
    assert!(dom.contains("payment_received"), "the history is missing:\n{dom}");
    assert!(dom.contains("¥400.00"), "the amount received is missing:\n{dom}");
    assert!(dom.contains("data-certificate=\"2025\""), "no certificate button for the received year:\n{dom}");

    // Proxy applications: the credited one and the one in flight.
    let dom = dump_dom(&format!("http://{}/?id={MOTHER}&token={OFFICE}", server.addr), &profile);
    assert_eq!(error_box(&dom), None, "the page shows an error:\n{dom}");
    assert!(dom.contains("BJ-DJ-2024-000101"), "the credited application is missing:\n{dom}");
    assert!(dom.contains("缴费到账成功 credited"), "the credited state is not spelled out:\n{dom}");
    assert!(dom.contains("data-proxy-state=\"submitted\""), "the application in flight is missing:\n{dom}");
    assert!(dom.contains("1 笔在途 in flight"), "the in-flight count is missing:\n{dom}");

    let dom = dump_dom(&format!("http://{}/?id={INVALID}&token={OFFICE}", server.addr), &profile);
    let error = error_box(&dom).unwrap_or_else(|| panic!("no error box for an invalid ID:\n{dom}"));
    assert!(error.contains("not a valid ID number"), "error box: {error}");
    assert!(!dom.contains("data-state="), "a card is shown for an invalid ID:\n{dom}");

    // The token comes from sessionStorage or the field: without one, the
    // API's 401 message is shown.
    let dom = dump_dom(&format!("http://{}/?id={PERSON}", server.addr), &dir.path().join("fresh-profile"));
    let error = error_box(&dom).unwrap_or_else(|| panic!("no error box without a token:\n{dom}"));
    assert!(error.contains("a valid bearer token is required"), "error box: {error}");
}

/// The rule every test with an outside program follows: missing, it skips
/// (and says so) on a developer's machine and fails under CI.
#[test]
fn a_missing_outside_program_skips_outside_ci_and_fails_under_ci() {
    let missing = "yibao-test-no-such-program";
    assert!(!common::outside::available_under(false, missing, "this test", "nowhere"));
    let under_ci = std::panic::catch_unwind(|| common::outside::available_under(true, missing, "this test", "nowhere"));
    let message = under_ci.expect_err("a missing program must fail under CI");
    let text = message.downcast_ref::<String>().map(String::as_str).unwrap_or_default();
    assert!(text.contains("yibao-test-no-such-program") && text.contains("CI=true"), "{text}");
    assert!(common::outside::available_under(true, "cargo", "this test", "nowhere"), "cargo runs here");
}
