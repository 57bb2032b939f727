//! The real proxies as child processes of a test: finding HAProxy and
//! nginx, reading their configurations from `deploy/` with only addresses,
//! paths and timeouts replaced, starting them in a scratch directory, and
//! stopping them (and every nginx worker) when the test ends.
//!
//! No system service is touched: each proxy runs in the foreground with its
//! pid file, logs and temp files in the test's own directory.
//!
//! tests/deploy.rs uses part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::{poll_until, secs};

/// A directory of the test's own, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("es-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The path of a tool, from the environment variable `env` or the usual
/// places (`/usr/sbin` is not on every user's PATH). `None`, with a loud
/// message, if it is not installed, unless `CI` is set: then CI's setup
/// has failed and the test must say so by failing.
pub fn tool(name: &str, env: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env).map(PathBuf::from);
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = from_env.into_iter().find(|p| p.is_file()).or_else(|| {
        path_dirs
            .into_iter()
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let message = format!(
            "{name} is not installed (nor named by ${env}): the test through {name} did not run. \
             Install it (apt-get install {name}); .ci/run does."
        );
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and {message}");
        }
        eprintln!("\n!!!!!!!! SKIPPED !!!!!!!! {message}\n");
    }
    found
}

/// A deploy file's text with each `(from, to)` replaced. Every `from`
/// must occur: a deploy file that no longer has what the test replaces
/// fails here instead of running with values the test did not choose.
pub fn deploy_file(relative: &str, replace: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "{relative} no longer contains {from:?}, which the test replaces"
        );
        text = text.replace(from, to);
    }
    text
}

/// The deploy file's timeouts that must outlast a parked consumer (the
/// lines marked `# poll`), scaled from the default poll timeout (40 s for
/// 30 s) to `to` (tests/proxies.rs: 4 s for its 2 s).
pub fn scale_poll_timeouts(text: &str, to: &str) -> String {
    let mut scaled = 0;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("# poll") && line.contains(" 40s") {
                scaled += 1;
                line.replace(" 40s", &format!(" {to}"))
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(
        scaled >= 2,
        "no timeouts marked `# poll` with 40s: {scaled}"
    );
    out.join("\n") + "\n"
}

/// A port nobody listens on now (the kernel's choice for port 0; another
/// process could take it before the proxy binds, which is unlikely).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

/// A proxy running in the foreground, stopped when dropped.
pub struct Proxy {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    /// Kept until the proxy has stopped.
    pub dir: Scratch,
}

impl Proxy {
    /// Starts `cmd` (stdout and stderr to a file in `dir`) and waits until
    /// `addr` answers `/healthz`.
    pub fn start(name: &'static str, mut cmd: Command, addr: SocketAddr, dir: Scratch) -> Proxy {
        let log = dir.path(&format!("{name}.out"));
        let out = fs::File::create(&log).expect("proxy log");
        let err = out.try_clone().expect("proxy log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut proxy = Proxy {
            name,
            addr,
            child,
            log,
            dir,
        };
        let url = format!("http://{addr}/healthz");
        let agent = crate::common::agent();
        let up = poll_until(secs(15.0), || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", proxy.output());
            }
            matches!(agent.get(&url).call(), Ok(r) if r.status() == 200)
        });
        assert!(up, "{name} did not answer /healthz:\n{}", proxy.output());
        proxy
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// What the proxy printed, and its error log if it has one.
    pub fn output(&self) -> String {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(more) = fs::read_to_string(self.dir.path("event-syncer-error.log")) {
            text.push_str(&more);
        }
        text
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM: nginx's master stops its workers (a SIGKILL would leave
        // them running, orphaned); HAProxy in the foreground just exits.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline: Instant = secs(10.0);
        let exited = poll_until(deadline, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// HAProxy's view of each server of `backend`, from `show stat` on the
/// stats socket: (server name, status such as `UP`, `DOWN`, `UP 1/2`).
pub fn haproxy_servers(socket: &Path, backend: &str) -> Vec<(String, String)> {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::os::unix::net::UnixStream::connect(socket) else {
        return Vec::new();
    };
    let mut text = String::new();
    if conn.write_all(b"show stat\n").is_err() || conn.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > st && f[px] == backend && f[sv] != "BACKEND" && f[sv] != "FRONTEND")
        .map(|f| (f[sv].to_string(), f[st].to_string()))
        .collect()
}
