//! What yibao writes holds full ID numbers and names: the owner's only.

/// Everything the process creates — the ledger's files and directories,
/// checkpoints, exports, the access log, reconciliation reports — is the
/// owner's only (files 0600, directories 0700), whatever umask it was
/// started with. The ledger also closes its data directory (0700) when it
/// opens it for writing, for files made before this.
pub fn restrict_new_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}
