//! The log's conformance suite (ledger::conformance) on PostgreSQL, a
//! throwaway server per test (skipped, loudly, when PostgreSQL is missing;
//! required under CI=true); and export→restore between sled and PostgreSQL.

use ledger::conformance::{Harness, SledHarness};
use ledger::log::StoredRecords;
use ledger::{Head, LogStore, OpenMode, Result};
use pglog::PgLog;
use std::sync::atomic::{AtomicUsize, Ordering};

struct PgHarness {
    server: pgtest::TempPostgres,
    n_databases: AtomicUsize,
}

impl PgHarness {
    fn start(test: &str) -> Option<PgHarness> {
        Some(PgHarness { server: pgtest::TempPostgres::for_test(test)?, n_databases: AtomicUsize::new(0) })
    }

    fn open_place(url: &str, mode: OpenMode) -> Result<Box<dyn LogStore>> {
        Ok(Box::new(PgLog::open(url, mode)?))
    }
}

impl Harness for PgHarness {
    fn name(&self) -> &str {
        "postgres"
    }

    fn fresh_place(&self, label: &str) -> String {
        let n = self.n_databases.fetch_add(1, Ordering::Relaxed);
        self.server.create_database(&format!("{}_{n}", label.replace('-', "_")))
    }

    fn open(&self, place: &str, mode: OpenMode) -> Result<Box<dyn LogStore>> {
        PgHarness::open_place(place, mode)
    }

    fn restore(&self, place: &str, header_bytes: &[u8], records: StoredRecords<'_>) -> Result<Head> {
        pglog::restore(place, header_bytes, records)
    }

    fn shared(&self) -> bool {
        true
    }
}

ledger::conformance_tests!(PgHarness::start("pglog conformance"), PgHarness::open_place);

#[test]
fn export_restores_between_sled_and_postgres() {
    let Some(postgres) = PgHarness::start("export_restores_between_sled_and_postgres") else { return };
    let sled = SledHarness::new();
    ledger::conformance::export_restores_the_same_chain(&sled, &postgres);
    ledger::conformance::export_restores_the_same_chain(&postgres, &sled);
}
