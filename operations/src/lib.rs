//! The ledger's operations, between the domain crates (`ledger`,
//! `projections`, `replay`, `reconcile`) and the two frontends (the
//! `yibao` command line and its HTTP service). One handle on a ledger
//! (`Ledger`), typed inputs, typed answers (serde types that `--json` and
//! HTTP both give), and an error enum per operation over a shared
//! `StorageError`, each with a `Kind` the frontends turn into an exit code
//! or an HTTP status. Every rule is decided here or below, once, for every
//! frontend.

pub mod answers;
pub mod backup;
pub mod certificate;
pub mod channels;
pub mod checkpoints;
pub mod coverage;
pub mod error;
pub mod facts;
pub mod family;
mod handle;
pub mod import;
pub mod keys;
pub mod location;
pub mod policy;
pub mod progress;
pub mod proof;
pub mod reconcile;
pub mod records;
pub mod refund;
pub mod register;
pub mod replay;
pub mod salvage;
pub mod signed_head;

pub use error::{Classified, Kind, StorageError};
pub use handle::{
    forget_person_store, person_store_path, record, store_chunk_envelopes, Ledger, OpenError, PersonStorePlace,
    Projections, RecordError, Recorded, STORE_CHUNK_VARIABLE,
};
pub use location::{Backend, Location};
