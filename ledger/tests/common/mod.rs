//! Shared helpers for the ledger's integration tests.
#![allow(dead_code)]

use chrono::NaiveDate;
use ledger::event::{Payer, PaymentReceived, PersonRegistered};
use ledger::{BeijingTime, Date, Event, Identity, Money, NewEvent, RegionCode};

pub fn bijie() -> RegionCode {
    "520500".parse().expect("region")
}

pub fn person(n: u32) -> Identity {
    let birth = NaiveDate::from_ymd_opt(1960 + (n % 50) as i32, 1 + n % 12, 1 + n % 28).expect("date");
    Identity::resident(bijie(), birth, (n % 1000) as u16)
}

pub fn payment(n: u32) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(n),
        coverage_year: 2025,
        amount: Money::from_yuan(400),
        channel: "wechat".into(),
        channel_ref: format!("WX{n:010}"),
        payer: Payer::Myself,
        paid_at: BeijingTime(1_730_000_000_000_000 + i64::from(n)),
    })
}

pub fn registration(n: u32) -> Event {
    let id = person(n);
    Event::PersonRegisteredV1(PersonRegistered {
        birth_date: Date(id.birth_date().expect("resident id")),
        person: id,
        name: format!("参保人{n}"),
        region: bijie(),
        registered_on: Date::ymd(2024, 10, 1).expect("date"),
        basis: Default::default(),
    })
}

pub fn fact(event: Event) -> NewEvent {
    NewEvent::fact(event, "test")
}

/// A payment whose channel reference is `reference`, so that a test can tell
/// its events apart by their idempotency keys (`payment/wechat/<reference>`).
pub fn payment_with_ref(reference: &str, n: u32) -> Event {
    let mut event = payment(n);
    if let Event::PaymentReceivedV1(p) = &mut event {
        p.channel_ref = reference.to_string();
    }
    event
}

/// The channel reference of a payment, `None` for other events.
pub fn channel_ref(event: &Event) -> Option<&str> {
    match event {
        Event::PaymentReceivedV1(p) => Some(&p.channel_ref),
        _ => None,
    }
}

/// A small seeded generator (SplitMix64): reproducible from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A seed from the environment variable `var` if set, else from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{var}={text} is not a u64 seed")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED),
    }
}

/// What a child killed by [`run_child_until_killed`] printed.
pub struct KilledChild {
    /// Its whole lines on standard output, in order (a line cut short by
    /// the kill is dropped: it acknowledges nothing).
    pub lines: Vec<String>,
    /// It printed the line `ready`.
    pub reached_ready: bool,
}

/// Runs the test `test` of this test binary alone in a child process with
/// `env`, waits (when `wait_for_ready`, at most `lifetime`) for its line
/// `ready`, lets it run for `delay` more, then kills it with SIGKILL. A
/// child that ends on its own, or is not ready in time, fails the test.
pub fn run_child_until_killed(
    test: &str,
    env: &[(&str, String)],
    wait_for_ready: bool,
    delay: std::time::Duration,
    lifetime: std::time::Duration,
) -> KilledChild {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    let exe = std::env::current_exe().expect("test binary");
    let mut command = Command::new(exe);
    command.args(["--exact", test, "--nocapture", "--test-threads", "1"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (line_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                // A line cut short by the kill is not an acknowledgement.
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => return,
                Ok(_) => {
                    if line_tx.send(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut reached_ready = false;
    let mut early = Vec::new();
    while wait_for_ready && !reached_ready {
        // Only a guard against a hang; never reached by a working child.
        match lines.recv_timeout(lifetime) {
            Ok(line) if line == "ready" => reached_ready = true,
            Ok(line) => early.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child was not ready after {lifetime:?}");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                panic!("the child ended before it was ready:\n{}", stderr_reader.join().unwrap_or_default());
            }
        }
    }
    std::thread::sleep(delay);
    let exited = child.try_wait().expect("poll the child");
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    let stderr = stderr_reader.join().unwrap_or_default();
    assert!(exited.is_none(), "the child stopped before it was killed ({status}):\n{stderr}");
    let mut whole = Vec::new();
    for line in early.into_iter().chain(lines.try_iter()) {
        if line == "ready" {
            reached_ready = true;
        } else {
            whole.push(line);
        }
    }
    KilledChild { lines: whole, reached_ready }
}
