//! The log's conformance suite (ledger::conformance) on sled.

use ledger::conformance::SledHarness;

ledger::conformance_tests!(Some(SledHarness::new()), SledHarness::open_place);
