//! A throwaway PostgreSQL server for tests.
//!
//! `TempPostgres::start` runs `initdb` in a temporary directory and starts
//! `postgres` on a free port of 127.0.0.1 (trust authentication, user
//! `yibao`). The server stops when the value is dropped, and a watchdog
//! shell stops it when the test process dies without dropping it (a
//! failed assertion in another thread, a `kill -9`).
//!
//! When PostgreSQL is not installed, `for_test` says so loudly on stderr
//! and returns `None` (the test skips), except under `CI=true`, where it
//! panics: CI always tests both backends.
//!
//! PostgreSQL refuses to run as root: as root, the data directory is given
//! to the `postgres` user and the server runs as that user (`setpriv`).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway server.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    port: u16,
    watchdog: Child,
}

/// The directory holding `initdb` and `postgres`: the PATH first, then
/// Debian's versioned directories (newest first).
pub fn find_binaries() -> Option<PathBuf> {
    let on_path =
        std::env::var_os("PATH").into_iter().flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|entry| entry.ok()).map(|entry| entry.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path.chain(debian).find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

impl TempPostgres {
    /// A server for the test `test`, or `None` (said loudly) when
    /// PostgreSQL is not installed. Under `CI=true` a missing PostgreSQL,
    /// or one that does not start, fails the test.
    pub fn for_test(test: &str) -> Option<TempPostgres> {
        let Some(binaries) = find_binaries() else {
            assert!(!under_ci(), "{test}: PostgreSQL (initdb, postgres) is not installed, and CI=true requires it");
            eprintln!(
                "\n*** SKIPPED {test}: PostgreSQL (initdb, postgres) is not installed; \
                 install Debian's `postgresql` to run it ***\n"
            );
            return None;
        };
        match TempPostgres::start_with(&binaries) {
            Ok(server) => Some(server),
            Err(error) => panic!("{test}: starting a throwaway PostgreSQL from {}: {error}", binaries.display()),
        }
    }

    /// Starts a server with the binaries in `binaries`.
    pub fn start_with(binaries: &Path) -> Result<TempPostgres, String> {
        let dir = tempfile::Builder::new().prefix("yibao-pg-").tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let mut initdb = user_command(as_root, &binaries.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "yibao", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]);
        run(&mut initdb)?;
        let port = free_port()?;
        let log = dir.path().join("server.log");
        // The watchdog: the server's parent shell, which stops it (a fast
        // shutdown) when this process is gone, and then removes the
        // directory that process can no longer remove (a server shared by
        // a test binary's tests is never dropped).
        let postgres = binaries.join("postgres");
        let user = if as_root { "setpriv --reuid=postgres --regid=postgres --init-groups " } else { "" };
        let script = format!(
            "{user}'{postgres}' -D '{data}' -p {port} -k '{socket}' -c listen_addresses=127.0.0.1 \
             -c max_connections=300 -c shared_buffers=128MB >'{log}' 2>&1 & server=$!; \
             trap 'kill -INT $server; wait $server; exit 0' TERM INT; \
             while [ -d /proc/{parent} ] && kill -0 $server 2>/dev/null; do sleep 0.5; done; \
             kill -INT $server 2>/dev/null; wait $server; [ -d /proc/{parent} ] || rm -rf '{socket}'",
            postgres = postgres.display(),
            data = data.display(),
            socket = dir.path().display(),
            log = log.display(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting sh: {e}"))?;
        let server = TempPostgres { dir, port, watchdog };
        server.wait_until_ready(&log)?;
        Ok(server)
    }

    fn wait_until_ready(&self, log: &Path) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let mut text = String::new();
            if let Ok(mut file) = std::fs::File::open(log) {
                let _ = file.read_to_string(&mut text);
            }
            if text.contains("ready to accept connections") {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT || text.contains("FATAL") {
                return Err(format!("the server did not start; its log:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://yibao@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database and returns its URL: each test (or
    /// each ledger of a test) gets its own.
    pub fn create_database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the throwaway PostgreSQL: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        self.url_of(name)
    }

    /// Closes every connection to the database at `url` but the one this
    /// asks through, as a restart or a failover of the server would.
    pub fn close_connections(&self, url: &str) {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the throwaway PostgreSQL: {e}"));
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap_or_else(|e| panic!("closing the connections to {url}: {e}"));
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // The watchdog's trap stops the server and waits for it.
        let _ = Command::new("kill").arg("-TERM").arg(self.watchdog.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn user_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr)))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|address| address.port()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_answers_and_stops() {
        let Some(server) = TempPostgres::for_test("a_server_starts_answers_and_stops") else { return };
        let url = server.create_database("probe");
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
        let row = client.query_one("SELECT 40 + 2", &[]).expect("an answer");
        assert_eq!(row.get::<_, i32>(0), 42);
        drop(client);
        let port = server.port();
        drop(server);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the server still listens after drop");
    }
}
