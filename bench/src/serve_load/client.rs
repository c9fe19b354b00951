//! A lean load generator: every client is a task on one tokio thread with
//! its own keep-alive connection, writing HTTP/1.1 requests by hand and
//! reading answers by their Content-Length. Costs a few microseconds per
//! request, where the thread-per-client ureq peer costs a context switch
//! or two, so the server gets most of the cores.

use super::{Seen, Work, CHANNEL_TOKEN, OFFICE_TOKEN};
use anyhow::{bail, Context, Result};
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `work.total` requests from `concurrency` connections, stopping early at
/// the deadline. Returns what every client saw, and whether the cap hit.
pub fn drive(addr: &str, work: &Work, concurrency: usize) -> Result<(Vec<Seen>, bool)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let shared =
        Rc::new(Shared { addr: addr.to_string(), work: work.clone(), next: Cell::new(0), capped: Cell::new(false) });
    let local = tokio::task::LocalSet::new();
    let seen = local.block_on(&runtime, async {
        let clients: Vec<_> = (0..concurrency).map(|_| tokio::task::spawn_local(client(Rc::clone(&shared)))).collect();
        let mut seen = Vec::with_capacity(clients.len());
        for handle in clients {
            seen.push(handle.await.context("a client task failed")?);
        }
        Ok::<_, anyhow::Error>(seen)
    })?;
    Ok((seen, shared.capped.get()))
}

/// What the clients of one phase share (one thread: no atomics).
struct Shared {
    addr: String,
    work: Work,
    next: Cell<u64>,
    capped: Cell<bool>,
}

async fn client(shared: Rc<Shared>) -> Seen {
    let (addr, work) = (shared.addr.as_str(), &shared.work);
    let mut mine = Seen::default();
    let mut connection: Option<Connection> = None;
    let mut request = Vec::with_capacity(512);
    loop {
        let index = shared.next.get();
        shared.next.set(index + 1);
        if index >= work.total {
            break;
        }
        if Instant::now() >= work.deadline {
            shared.capped.set(true);
            break;
        }
        let id = work.id(index);
        request.clear();
        let post_ref = match work.posts.as_deref() {
            Some(tag) if index.is_multiple_of(work.post_every) => {
                let channel_ref = format!("BENCH-{tag}-{index}");
                write_post(&mut request, addr, id, &channel_ref);
                Some(channel_ref)
            }
            _ => {
                write_lookup(&mut request, addr, id);
                None
            }
        };
        let sent = Instant::now();
        let outcome = match connection.as_mut() {
            Some(open) => open.call(&request).await,
            None => match Connection::open(addr).await {
                Ok(open) => connection.insert(open).call(&request).await,
                Err(error) => Err(error),
            },
        };
        let latency = sent.elapsed();
        match outcome {
            Ok(Answer { status, keep_alive, body }) if (200..300).contains(&status) => {
                mine.latencies.push(latency);
                if let Some(channel_ref) = post_ref {
                    mine.post_latencies.push(latency);
                    mine.acknowledged_refs.push(channel_ref);
                }
                if !keep_alive {
                    connection = None;
                }
                drop(body);
            }
            Ok(Answer { status, keep_alive, body }) => {
                mine.errors += 1;
                mine.first_error.get_or_insert_with(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                if !keep_alive {
                    connection = None;
                }
            }
            Err(error) => {
                mine.errors += 1;
                mine.first_error.get_or_insert_with(|| format!("{error:#}"));
                connection = None;
            }
        }
    }
    mine
}

fn write_lookup(out: &mut Vec<u8>, host: &str, id: &str) {
    let _ = write!(
        out,
        "GET /v1/coverage/{id}?year=2021 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {OFFICE_TOKEN}\r\n\r\n"
    );
}

fn write_post(out: &mut Vec<u8>, host: &str, id: &str, channel_ref: &str) {
    let body = super::payment_json(id, channel_ref);
    let _ = write!(
        out,
        "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CHANNEL_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

struct Answer {
    status: u16,
    keep_alive: bool,
    body: Vec<u8>,
}

/// One keep-alive connection and what was read past the last answer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str) -> Result<Connection> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffer: Vec::with_capacity(8192) })
    }

    async fn call(&mut self, request: &[u8]) -> Result<Answer> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await.context("no answer within 10 s")?
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Answer> {
        self.stream.write_all(request).await.context("sending")?;
        let header_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..header_end]).context("answer head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut keep_alive = true;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("chunked answers are not read by this client");
            }
        }
        let length = length.context("an answer without Content-Length")?;
        while self.buffer.len() < header_end + length {
            self.fill().await?;
        }
        let body = self.buffer[header_end..header_end + length].to_vec();
        self.buffer.drain(..header_end + length);
        Ok(Answer { status, keep_alive, body })
    }

    async fn fill(&mut self) -> Result<()> {
        let start = self.buffer.len();
        self.buffer.resize(start + 16 * 1024, 0);
        let read = self.stream.read(&mut self.buffer[start..]).await;
        let n = match read {
            Ok(n) => n,
            Err(error) => {
                self.buffer.truncate(start);
                return Err(error).context("receiving");
            }
        };
        self.buffer.truncate(start + n);
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}
