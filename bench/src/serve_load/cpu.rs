//! Where the cores went during a phase (Linux `/proc`): the server's CPU
//! time per request answered, a figure the load generator cannot inflate,
//! and the share of the machine other processes took, which says how far
//! to trust the phase's rates on a shared machine.

use std::fs;

/// Clock ticks at one moment: the machine's, the server's, this process's
/// (with its waited-for children, such as wrk).
#[derive(Clone, Copy)]
pub struct Sample {
    machine_total: u64,
    machine_busy: u64,
    server: u64,
    bench: u64,
}

/// What a phase used, from two samples.
#[derive(Clone, Copy)]
pub struct Usage {
    /// Server CPU seconds.
    pub server_seconds: f64,
    /// Share of all cores busy with other processes (0 to 1).
    pub other_share: f64,
}

/// `None` where `/proc` is not there to read.
pub fn sample(server_pid: u32) -> Option<Sample> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = ticks[..] else { return None };
    let busy = user + nice + system + irq + softirq + steal;
    Some(Sample {
        machine_total: busy + idle + iowait,
        machine_busy: busy,
        server: process_ticks(&format!("/proc/{server_pid}/stat"), false)?,
        bench: process_ticks("/proc/self/stat", true)?,
    })
}

/// utime + stime (+ cutime + cstime) of a process.
fn process_ticks(path: &str, with_children: bool) -> Option<u64> {
    let stat = fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let own = field(14)? + field(15)?;
    Some(if with_children { own + field(16)? + field(17)? } else { own })
}

pub fn usage(before: Option<Sample>, after: Option<Sample>) -> Option<Usage> {
    let (before, after) = (before?, after?);
    let total = after.machine_total.saturating_sub(before.machine_total).max(1) as f64;
    let busy = after.machine_busy.saturating_sub(before.machine_busy);
    let server = after.server.saturating_sub(before.server);
    let bench = after.bench.saturating_sub(before.bench);
    let ticks_per_second = ticks_per_second();
    Some(Usage {
        server_seconds: server as f64 / ticks_per_second,
        other_share: busy.saturating_sub(server + bench) as f64 / total,
    })
}

/// USER_HZ: 100 on every Linux the bench runs on.
fn ticks_per_second() -> f64 {
    100.0
}

/// The share of all cores busy between two samples (0 to 1), whoever used
/// them.
pub fn machine_busy(before: Option<Sample>, after: Option<Sample>) -> Option<f64> {
    let (before, after) = (before?, after?);
    let total = after.machine_total.checked_sub(before.machine_total)?;
    let busy = after.machine_busy.checked_sub(before.machine_busy)?;
    (total > 0).then(|| busy as f64 / total as f64)
}
