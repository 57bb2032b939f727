//! Several instances behind the real proxies, with the configurations in
//! `deploy/`: three event-syncer instances behind HAProxy and behind nginx,
//! each key hashed to one instance.
//!
//! What it shows, per proxy:
//! - 20 consumer groups of 3 consumers each over 8 keys get every event of
//!   their key exactly once, through the proxy;
//! - each key's events are on exactly one instance (asked of each instance
//!   directly), also when its pushes and gets spell the key in different
//!   encodings (`my+alpha` and `my%20alpha`) through HAProxy; through nginx
//!   each key keeps one encoding, as deploy/nginx/nginx.conf says it must;
//! - one instance killed (`SIGKILL`) and restarted mid-test on its
//!   `--data-dir`: its keys' events are delayed, not lost, and every key is
//!   delivered exactly once (with `EVENT_SYNCER_TEST_MEMORY_ONLY=1` the
//!   instances run memory only, and the test checks that the loss is
//!   confined to the restarted instance's keys, and names them);
//! - a parked consumer is answered `[]` at the poll timeout through the
//!   proxy, not cut by a proxy timeout.
//!
//! If a proxy is not installed the test says so loudly and passes, unless
//! `CI` is set: then it fails.

mod common;
#[path = "proxies/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tools::*;

/// `--poll-timeout` of the instances. The proxies' timeouts marked "poll"
/// in deploy/ (40 s for the default 30 s) become [`PROXY_TIMEOUT`].
const POLL_TIMEOUT: &str = "2";
const PROXY_TIMEOUT: &str = "4s";

const KEYS: [&str; 8] = [
    "my alpha",
    "my beta",
    "gamma ray",
    "delta x",
    "eps ilon",
    "zeta z",
    "café au lait",
    "theta 9",
];
const GROUPS: usize = 20;
const CONSUMERS_PER_GROUP: usize = 3;
/// Groups `0..LIVE_GROUPS` consume from the start, through the restart;
/// the others start after it, to find what each instance kept.
const LIVE_GROUPS: usize = 10;
const EVENTS_PER_PHASE: usize = 5;

/// Whether the instances run with a data directory each, so that the
/// restarted one keeps its backlog: the default, since that is how a
/// deployment behind a proxy should run.
fn durable() -> bool {
    std::env::var_os("EVENT_SYNCER_TEST_MEMORY_ONLY").is_none()
}

fn key_of_group(group: usize) -> usize {
    group % KEYS.len()
}

/// The key as sent: `+` or `%20` for its spaces.
fn spelled(key: &str, plus: bool) -> String {
    let pct = enc(key);
    if plus { pct.replace("%20", "+") } else { pct }
}

/// How each proxy may spell key `k` on its `n`th use: HAProxy hashes the
/// decoded key, so both spellings are mixed; nginx hashes the raw text,
/// so each key keeps one.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Haproxy,
    Nginx,
}

fn spelling(kind: Kind, k: usize, n: usize) -> String {
    let plus = match kind {
        Kind::Haproxy => n.is_multiple_of(2),
        Kind::Nginx => k.is_multiple_of(2),
    };
    spelled(KEYS[k], plus)
}

/// Three instances, with a data directory each when [`durable`].
struct Instances {
    servers: Vec<Option<Server>>,
    addrs: Vec<String>,
    dirs: Scratch,
}

impl Instances {
    fn start() -> Instances {
        let dirs = Scratch::new("instances");
        let mut inst = Instances {
            servers: Vec::new(),
            addrs: Vec::new(),
            dirs,
        };
        for i in 0..3 {
            let server = inst.launch(i, "127.0.0.1:0");
            inst.addrs.push(server.addr().to_string());
            inst.servers.push(Some(server));
        }
        inst
    }

    fn launch(&self, i: usize, listen: &str) -> Server {
        let dir = self.dirs.path(&format!("es{i}"));
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec![
            "--listen",
            listen,
            "--poll-timeout",
            POLL_TIMEOUT,
            "--access-log",
        ];
        if durable() {
            args.extend(["--data-dir", &dir]);
        }
        Server::launch(&args, &[])
    }

    fn get(&self, i: usize) -> &Server {
        self.servers[i].as_ref().expect("instance running")
    }

    /// SIGKILL, then a new process on the same address.
    fn kill_and_restart(&mut self, i: usize) {
        drop(self.servers[i].take());
        let server = self.launch(i, &self.addrs[i].clone());
        self.servers[i] = Some(server);
    }

    /// The events of `key` instance `i` still holds (asked directly, as a
    /// group that never read, which starts at the oldest event retained).
    fn events_on(&self, i: usize, key: &str, probe: &str) -> Vec<serde_json::Value> {
        let (status, body) = bget(self.get(i), key, probe, Some("0"));
        assert_eq!(status, 200, "probe {key} on instance {i}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }
}

/// What the consumers received: (group, event) in arrival order.
type Received = Arc<Mutex<Vec<(usize, serde_json::Value)>>>;

/// Starts the 3 consumers of `group`; each polls through the proxy until
/// `stop`, retrying after a proxy error (a killed instance's consumers get
/// 502 until it is back).
fn consumers(
    kind: Kind,
    proxy: &Proxy,
    group: usize,
    got: &Received,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<usize>> {
    (0..CONSUMERS_PER_GROUP)
        .map(|c| {
            let (got, stop) = (Arc::clone(got), Arc::clone(stop));
            let base = proxy.url("");
            thread::spawn(move || {
                let agent = agent();
                let k = key_of_group(group);
                let mut errors = 0;
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let url = format!(
                        "{base}/blocking-get?key={}&groupId=g{group}&timeout=1",
                        spelling(kind, k, n)
                    );
                    match agent.get(&url).call() {
                        Ok(mut r) if r.status() == 200 => {
                            let body = r.body_mut().read_to_string().unwrap_or_default();
                            let batch: Vec<serde_json::Value> =
                                serde_json::from_str(&body).unwrap_or_default();
                            let mut got = got.lock().expect("lock");
                            got.extend(batch.into_iter().map(|e| (group, e)));
                        }
                        _ => {
                            errors += 1;
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                errors
            })
        })
        .collect()
}

/// Pushes phase `phase`'s events to every key through the proxy.
fn push_phase(kind: Kind, proxy: &Proxy, phase: &str) {
    let agent = agent();
    for n in 0..EVENTS_PER_PHASE {
        for (k, key) in KEYS.iter().enumerate() {
            let url = proxy.url(&format!("/push?key={}", spelling(kind, k, n)));
            let body = serde_json::json!({"key": key, "phase": phase, "n": n}).to_string();
            let (status, text, _) = finish(agent.post(&url).send(body.as_bytes()));
            assert_eq!(status, 200, "push {url} through {}: {text}", proxy.name);
        }
    }
}

/// The (phase, n) of events each group should end with.
fn expected(group: usize, victims: &BTreeSet<usize>) -> BTreeSet<(String, u64)> {
    let k = key_of_group(group);
    let lost_a = group >= LIVE_GROUPS && victims.contains(&k) && !durable();
    let phases: &[&str] = if lost_a { &["C"] } else { &["A", "C"] };
    phases
        .iter()
        .flat_map(|p| (0..EVENTS_PER_PHASE as u64).map(move |n| (p.to_string(), n)))
        .collect()
}

fn tally(got: &Received, group: usize) -> Vec<(String, u64)> {
    let got = got.lock().expect("lock");
    got.iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, e)| {
            assert_eq!(e["key"], KEYS[key_of_group(group)], "g{group} got {e}");
            (
                e["phase"].as_str().unwrap_or("?").to_string(),
                e["n"].as_u64().unwrap_or(99),
            )
        })
        .collect()
}

/// Each key's events are on exactly one instance, all of them; returns the
/// owner of each key.
fn owners(inst: &Instances, probe: &str, phases: &[&str]) -> Vec<usize> {
    KEYS.iter()
        .map(|key| {
            let found: Vec<(usize, usize)> = (0..3)
                .map(|i| (i, inst.events_on(i, key, probe).len()))
                .filter(|(_, n)| *n > 0)
                .collect();
            assert_eq!(found.len(), 1, "{key:?} is split over instances {found:?}");
            let (owner, n) = found[0];
            assert_eq!(n, EVENTS_PER_PHASE * phases.len(), "{key:?} on {owner}");
            owner
        })
        .collect()
}

fn scenario(kind: Kind, start_proxy: impl Fn(&Instances) -> Proxy) {
    let mut inst = Instances::start();
    let proxy = start_proxy(&inst);
    let name = proxy.name;

    let got: Received = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<_> = (0..LIVE_GROUPS)
        .flat_map(|g| consumers(kind, &proxy, g, &got, &stop))
        .collect();
    push_phase(kind, &proxy, "A");
    let all_a = poll_until(secs(30.0), || {
        (0..LIVE_GROUPS).all(|g| tally(&got, g).len() == EVENTS_PER_PHASE)
    });
    assert!(
        all_a,
        "{name}: live groups did not get phase A: {:?}",
        got.lock().map(|g| g.len())
    );
    let owner = owners(&inst, "probe-a", &["A"]);
    let victim = owner[0];
    let victims: BTreeSet<usize> = (0..KEYS.len()).filter(|&k| owner[k] == victim).collect();

    // Mid-test, with consumers parked on it: kill one instance, restart it.
    inst.kill_and_restart(victim);
    if kind == Kind::Haproxy {
        let socket = proxy.dir.path("stats.sock");
        let mut seen = Vec::new();
        let up = poll_until(secs(20.0), || {
            seen = haproxy_servers(&socket, "event_syncer");
            seen.len() == 3 && seen.iter().all(|(_, s)| s == "UP")
        });
        assert!(up, "HAProxy does not see every instance up again: {seen:?}");
    }
    // Every key answers through the proxy again before the next pushes: a
    // connection the proxy kept to the killed process is found dead by a
    // request that consumes nothing rather than by a push.
    let warm = agent();
    for k in 0..KEYS.len() {
        for n in 0..2 {
            let url = proxy.url(&format!(
                "/blocking-get?key={}&groupId=warmup&timeout=0",
                spelling(kind, k, n)
            ));
            let ok = poll_until(
                secs(10.0),
                || matches!(warm.get(&url).call(), Ok(r) if r.status() == 200),
            );
            assert!(ok, "{name}: {url} does not answer after the restart");
        }
    }
    // A consumer with nothing to get waits the whole poll timeout (started
    // after the restart, which would cut it if its key were the victim's).
    let lonely = proxy.url(&format!(
        "/blocking-get?key={}&groupId=solo",
        spelled("lonely one", true)
    ));
    let waiter = thread::spawn(move || {
        let began = Instant::now();
        let (status, body, _) = finish(agent().get(&lonely).call());
        (status, body, began.elapsed())
    });

    push_phase(kind, &proxy, "C");
    threads.extend((LIVE_GROUPS..GROUPS).flat_map(|g| consumers(kind, &proxy, g, &got, &stop)));
    let done = poll_until(secs(30.0), || {
        (0..GROUPS).all(|g| tally(&got, g).len() >= expected(g, &victims).len())
    });
    // Give a duplicate, if any, the time to arrive before judging.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let errors: usize = threads
        .into_iter()
        .map(|t| t.join().expect("consumer"))
        .sum();

    let mut report = BTreeMap::new();
    for g in 0..GROUPS {
        let list = tally(&got, g);
        let set: BTreeSet<_> = list.iter().cloned().collect();
        assert_eq!(
            set.len(),
            list.len(),
            "{name}: g{g} got an event twice: {list:?}"
        );
        assert_eq!(
            set,
            expected(g, &victims),
            "{name}: g{g} (key {:?})",
            KEYS[key_of_group(g)]
        );
        report.insert(g, list.len());
    }
    assert!(done, "{name}: deliveries incomplete: {report:?}");

    // Still one instance per key, the same one, holding what it should.
    let kept: HashMap<usize, usize> = (0..KEYS.len())
        .map(|k| {
            let found: Vec<usize> = (0..3)
                .filter(|&i| !inst.events_on(i, KEYS[k], "probe-z").is_empty())
                .collect();
            assert_eq!(found, [owner[k]], "{name}: {:?} after the restart", KEYS[k]);
            (k, inst.events_on(owner[k], KEYS[k], "probe-y").len())
        })
        .collect();
    for (k, n) in kept {
        let lost = victims.contains(&k) && !durable();
        let want = EVENTS_PER_PHASE * if lost { 1 } else { 2 };
        assert_eq!(n, want, "{name}: {:?} on instance {}", KEYS[k], owner[k]);
    }
    let lost: Vec<&str> = victims.iter().map(|&k| KEYS[k]).collect();
    eprintln!(
        "{name}: owners {owner:?}; instance {victim} restarted {}: keys {lost:?}; \
         {errors} consumer retries during the restart",
        if durable() {
            "and kept its backlog"
        } else {
            "and lost its backlog (memory only)"
        }
    );

    // Both files pass the client's address on; the access log shows it.
    let forwarded = (0..3).any(|i| inst.get(i).logs().contains(" xff=127.0.0.1 method="));
    assert!(forwarded, "{name}: no access-log line with xff=127.0.0.1");

    let (status, body, waited) = waiter.join().expect("waiter");
    assert_eq!(
        (status, body.as_str()),
        (200, "[]"),
        "{name} cut a parked consumer"
    );
    assert!(
        (Duration::from_secs(2)..Duration::from_millis(3500)).contains(&waited),
        "{name}: [] came after {waited:?}, poll timeout {POLL_TIMEOUT} s"
    );
}

fn upstreams(inst: &Instances) -> Vec<(&'static str, String)> {
    ["127.0.0.1:3031", "127.0.0.1:3032", "127.0.0.1:3033"]
        .into_iter()
        .zip(inst.addrs.iter().cloned())
        .collect()
}

/// HAProxy with deploy/haproxy/haproxy.cfg in front of `inst`.
fn haproxy(path: &Path, inst: &Instances, timeout: &str) -> Proxy {
    let dir = Scratch::new("haproxy");
    let addr = free_addr();
    let mut replace = upstreams(inst);
    replace.push(("127.0.0.1:8080", addr.to_string()));
    let socket = dir.path("stats.sock").to_string_lossy().into_owned();
    replace.push(("/run/haproxy/event-syncer.sock", socket));
    let text = deploy_file("deploy/haproxy/haproxy.cfg", &replace);
    let conf = dir.path("haproxy.cfg");
    std::fs::write(&conf, scale_poll_timeouts(&text, timeout)).expect("write config");
    let mut cmd = Command::new(path);
    cmd.arg("-f").arg(&conf).arg("-db");
    Proxy::start("haproxy", cmd, addr, dir)
}

/// nginx with deploy/nginx/nginx.conf in front of `inst`.
fn nginx(path: &Path, inst: &Instances, timeout: &str) -> Proxy {
    let dir = Scratch::new("nginx");
    let addr = free_addr();
    let root = format!("{}/", dir.0.to_string_lossy());
    let mut replace = upstreams(inst);
    replace.push(("127.0.0.1:8080", addr.to_string()));
    for prefix in ["/run/", "/var/log/nginx/", "/var/lib/nginx/"] {
        replace.push((prefix, root.clone()));
    }
    let text = deploy_file("deploy/nginx/nginx.conf", &replace);
    let conf = dir.path("nginx.conf");
    std::fs::write(&conf, scale_poll_timeouts(&text, timeout)).expect("write config");
    let mut cmd = Command::new(path);
    cmd.arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    Proxy::start("nginx", cmd, addr, dir)
}

#[test]
fn three_instances_behind_haproxy() {
    if let Some(path) = tool("haproxy", "HAPROXY") {
        scenario(Kind::Haproxy, |inst| haproxy(&path, inst, PROXY_TIMEOUT));
    }
}

#[test]
fn three_instances_behind_nginx() {
    if let Some(path) = tool("nginx", "NGINX") {
        scenario(Kind::Nginx, |inst| nginx(&path, inst, PROXY_TIMEOUT));
    }
}

/// The pitfall the deploy files avoid, shown: with the proxy's timeouts
/// below the poll timeout (1 s against 2 s), each proxy cuts a parked
/// consumer with a 504 before event-syncer answers it. So the `[]` the
/// scenarios check is the files' doing, not luck.
#[test]
fn a_proxy_timeout_below_the_poll_timeout_cuts_parked_consumers() {
    let inst = Instances::start();
    let mut proxies = Vec::new();
    if let Some(path) = tool("haproxy", "HAPROXY") {
        proxies.push(haproxy(&path, &inst, "1s"));
    }
    if let Some(path) = tool("nginx", "NGINX") {
        proxies.push(nginx(&path, &inst, "1s"));
    }
    for proxy in &proxies {
        let url = proxy.url("/blocking-get?key=short&groupId=g");
        let began = Instant::now();
        let (status, _, _) = finish(agent().get(&url).call());
        let waited = began.elapsed();
        assert_eq!(status, 504, "{} after {waited:?}", proxy.name);
        assert!(
            waited < Duration::from_millis(1900),
            "{} cut it after {waited:?}",
            proxy.name
        );
    }
}
