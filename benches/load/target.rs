//! The server under test: a child process started on a free port, or a
//! server already running somewhere that the user names by URL.
//!
//! A child's address is learnt from its log: both event-syncer and the
//! built-in baseline write `listening on http://127.0.0.1:PORT` to stderr.
//! A thread reads that line, then keeps draining stderr so a chatty server
//! never blocks on a full pipe, and keeps the last lines for error messages.
//! The child is killed when its [`Target`] is dropped, also while a panic
//! unwinds, and `PR_SET_PDEATHSIG` kills it should the benchmark itself be
//! killed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a child may take to print its address.
const STARTUP_DEADLINE: Duration = Duration::from_secs(15);
/// Lines of a child's stderr kept to explain a failure.
const KEPT_LINES: usize = 20;

/// A server to measure.
pub struct Target {
    /// What the table and the files call it: "event-syncer", "baseline",
    /// a variant ("haproxy, 2 instances"), or `--name` (by default the
    /// host and port of `--url`).
    pub name: String,
    /// Named by `--url`: another server, perhaps not event-syncer, whose
    /// semantic differences are findings rather than failures.
    pub external: bool,
    pub addr: SocketAddr,
    /// The `Host` header to send.
    pub host: String,
    /// Known for a child, or given with `--pid`; without it RSS and CPU are n/a.
    pub pid: Option<u32>,
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Target {
    /// Starts `program args...` and waits for its `listening on` line.
    pub fn spawn(name: &str, program: &Path, args: &[&str]) -> Result<Target, String> {
        let mut command = command(program, args);
        command.stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stderr = child.stderr.take().ok_or("child has no stderr pipe")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, address) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_addr(&line)
                    && let Some(found) = found.take()
                {
                    let _ = found.send(addr);
                }
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        });
        let mut target = Target {
            name: name.to_string(),
            external: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            host: String::new(),
            pid: Some(child.id()),
            child: Some(child),
            log,
        };
        match address.recv_timeout(STARTUP_DEADLINE) {
            Ok(addr) => {
                target.addr = addr;
                target.host = addr.to_string();
                Ok(target)
            }
            Err(_) => Err(format!(
                "{name} ({}) printed no `listening on http://…` line within {STARTUP_DEADLINE:?}{}; its stderr:\n{}",
                program.display(),
                target.exit_status(),
                target.recent_log()
            )),
        }
    }

    /// A child started with `command` that listens on `addr` and writes
    /// its stderr somewhere of its own (a file: an access log must not be
    /// measured through a pipe this process drains line by line). Waits
    /// until `addr` takes connections.
    pub fn adopt(name: &str, mut command: Command, addr: SocketAddr) -> Result<Target, String> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut target = Target {
            name: name.to_string(),
            external: false,
            addr,
            host: addr.to_string(),
            pid: Some(child.id()),
            child: Some(child),
            log: Arc::default(),
        };
        let deadline = std::time::Instant::now() + STARTUP_DEADLINE;
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            let died = target.exit_status();
            if !died.is_empty() || std::time::Instant::now() > deadline {
                return Err(format!("{name} does not listen on {addr}{died}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(target)
    }

    /// A server that is already running at `url` (`http://host:port`).
    pub fn external(url: &str, pid: Option<u32>) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: resolves to no address"))?;
        Ok(Target {
            name: host.clone(),
            external: true,
            addr,
            host,
            pid,
            child: None,
            log: Arc::default(),
        })
    }

    /// Empty when the child still runs, else how it ended.
    pub fn exit_status(&mut self) -> String {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => format!(" (it exited: {status})"),
            _ => String::new(),
        }
    }

    /// The last lines the child wrote to stderr.
    pub fn recent_log(&self) -> String {
        self.log
            .lock()
            .map(|kept| kept.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program args...` with no stdin or stdout, killed should the benchmark
/// itself be killed.
pub fn command(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: prctl is async-signal-safe, as `pre_exec` requires.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// The address in a `... listening on http://127.0.0.1:PORT ...` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on http://")? + "listening on http://".len();
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse().ok()
}

/// Checks of the log-line parser, run by `--self-test`.
pub fn self_test() -> Result<(), String> {
    let cases = [
        (
            "2026-11-25T21:00:00Z INFO  [event_syncer] listening on http://127.0.0.1:40123, poll timeout 30 s",
            Some("127.0.0.1:40123"),
        ),
        ("listening on http://127.0.0.1:9", Some("127.0.0.1:9")),
        ("listening on http://[::1]:8080/", Some("[::1]:8080")),
        ("listening on 127.0.0.1:9", None),
    ];
    for (line, want) in cases {
        let want: Option<SocketAddr> = want.map(|w| w.parse().expect("test address"));
        if listening_addr(line) != want {
            return Err(format!("listening_addr({line:?}) != {want:?}"));
        }
    }
    Ok(())
}
