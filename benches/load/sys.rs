//! What the benchmark asks of the OS: the fd limit, and a server's memory and
//! CPU time read from `/proc`.
//!
//! CPU time comes from `/proc/PID/task/*/schedstat` (nanoseconds, summed over
//! the threads, so a multi-threaded server is measured fairly) and falls back
//! to `utime + stime` of `/proc/PID/stat`, which only counts in clock ticks
//! (10 ms): too coarse for a fan-out that should cost tens of milliseconds.

use std::fs;

/// The soft and hard `RLIMIT_NOFILE` of this process.
#[derive(Clone, Copy, Debug)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises this process's soft fd limit to its hard limit; children started
/// afterwards inherit it. Returns the limit before and after.
pub fn raise_fd_limit() -> (FdLimit, FdLimit) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let unknown = FdLimit {
            soft: 1024,
            hard: 1024,
        };
        return (unknown, unknown);
    }
    let before = FdLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    };
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above; raising the soft limit up to the hard one is allowed.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0;
    let after = if raised {
        FdLimit {
            soft: limit.rlim_max,
            hard: limit.rlim_max,
        }
    } else {
        before
    };
    (before, after)
}

/// The soft fd limit of another process, from `/proc/PID/limits`.
pub fn fd_limit_of(pid: u32) -> Option<u64> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of a process in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used so far (user + system), in nanoseconds.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    schedstat_ns(pid).or_else(|| stat_ns(pid))
}

fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between listing and reading: it no longer counts.
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn stat_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields restart after
    // the last ')'. utime and stime are fields 14 and 15 of the whole line.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)?;
    Some(ticks * 1_000_000_000 / hz)
}

/// "AMD EPYC, 2 cores, Linux 6.1.0": what the figures were measured on.
pub fn hardware_line() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// Makes `close` reset the connection instead of a FIN, so that tearing down
/// thousands of connections leaves no `TIME_WAIT` entries holding local ports
/// for a minute (the next scenario needs those ports).
pub fn set_linger_zero(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller and `linger` is the
    // option's documented type and size. Failure only means a FIN is sent.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
