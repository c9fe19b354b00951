//! PostgreSQL specifics beyond the shared conformance suite: the URL named
//! without its password, a missing log, a changed row found by verify.

use ledger::{LedgerError, LogStore, OpenMode};
use pglog::PgLog;

#[test]
fn a_url_is_named_without_its_password() {
    assert_eq!(
        pglog::redacted("postgres://yibao:secret@db.example:5433/ledger"),
        "postgres://yibao@db.example:5433/ledger"
    );
    assert_eq!(
        pglog::redacted("postgres://yibao:secret@db.example:notaport/ledger"),
        "postgres://yibao@db.example:notaport/ledger"
    );
    let Err(error) = PgLog::open("postgres://yibao:secret@127.0.0.1:notaport/ledger", OpenMode::Existing) else {
        panic!("a URL that does not parse opened")
    };
    let text = error.to_string();
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("postgres://USER"), "says how to write it: {text}");
}

#[test]
fn a_refusing_server_is_named_with_what_to_check() {
    // A port nothing listens on: bind one and drop it.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let url = format!("postgres://yibao:secret@127.0.0.1:{port}/ledger");
    let Err(error) = PgLog::open(&url, OpenMode::Existing) else { panic!("opened a log where no server runs") };
    let text = error.to_string();
    assert!(matches!(error, LedgerError::Database { .. }), "{error:?}");
    assert!(text.contains(&format!("postgres://yibao@127.0.0.1:{port}/ledger")), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("check that PostgreSQL runs"), "{text}");
}

#[test]
fn opening_a_database_without_a_log_is_not_found() {
    let Some(server) = pgtest::TempPostgres::for_test("opening_a_database_without_a_log_is_not_found") else { return };
    let url = server.create_database("empty");
    for mode in [OpenMode::Existing, OpenMode::Read, OpenMode::Audit] {
        let result = PgLog::open(&url, mode);
        assert!(matches!(result, Err(LedgerError::NotFound(ref location)) if location.ends_with("/empty")), "{mode:?}");
    }
    let log = PgLog::open(&url, OpenMode::Create).expect("create");
    assert_eq!(log.location(), url);
    let ledger_id = log.header().ledger_id;
    drop(log);
    let reopened = PgLog::open(&url, OpenMode::Existing).expect("reopen");
    assert_eq!(reopened.header().ledger_id, ledger_id, "a reopen keeps the header");
}
