//! A server's memory, from `/proc/<pid>/status` (Linux only).

/// Resident memory of a process, in KiB: current (`VmRSS`) and peak (`VmHWM`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub now_kb: u64,
    /// `VmHWM`: the highest resident size so far.
    pub peak_kb: u64,
}

/// The memory of `pid`, or zeros when it cannot be read (the process is gone).
pub fn rss(pid: u32) -> Rss {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Rss::default();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Rss {
        now_kb: field("VmRSS:"),
        peak_kb: field("VmHWM:"),
    }
}

/// The summed memory of several processes (e.g. two server processes).
pub fn rss_sum(pids: &[u32]) -> Rss {
    pids.iter()
        .map(|&p| rss(p))
        .fold(Rss::default(), |a, b| Rss {
            now_kb: a.now_kb + b.now_kb,
            peak_kb: a.peak_kb + b.peak_kb,
        })
}
