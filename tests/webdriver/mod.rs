//! A minimal W3C WebDriver client for `tests/browser.rs`: it starts
//! `chromedriver` and a headless Chromium, and speaks the handful of
//! endpoints the test needs (new session, navigate, execute script, delete
//! session) as JSON over `ureq`.
//!
//! Why not a WebDriver crate: the protocol part used here is five HTTP
//! calls, while the crates (fantoccini, thirtyfour) bring an async runtime
//! and an HTTP stack to build on a busy two-core machine for the same five
//! calls. And a static file server for the page's own origin, because the
//! point of the test is a page on an origin other than the server's.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::authkit::TempDir;
use crate::common::poll_until;

/// The first of `names` found on `PATH`, or the path in environment
/// variable `var` if set.
pub fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Serves `page` for every `GET` on a port of its own: the page's origin,
/// `http://127.0.0.1:PORT`. The thread lives as long as the test binary.
pub fn serve_page(page: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
    let port = listener.local_addr().expect("page addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || answer_page(stream, page));
        }
    });
    port
}

fn answer_page(mut stream: TcpStream, page: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path.starts_with("/index.html") {
        ("200 OK", page)
    } else {
        ("404 Not Found", "not here")
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A free loopback port, for a program that must be told its port.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running chromedriver with one headless Chromium session. Both are
/// ended on drop: the session first, so Chromium exits with it.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a session driving `chromium`.
    pub fn start(chromedriver: &PathBuf, chromium: &PathBuf) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let profile = TempDir::new();
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let ready = poll_until(Instant::now() + Duration::from_secs(30), || {
            browser
                .call("GET", "/status", None)
                .is_some_and(|v| v["ready"] == json!(true))
        });
        assert!(ready, "chromedriver not ready on port {port} within 30 s");
        let args = [
            "--headless=new".to_string(),
            // Root in a container: Chromium's sandbox cannot start there.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = browser
            .call("POST", "/session", Some(caps))
            .expect("new session");
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        browser
    }

    /// One WebDriver call; its `value`, or `None` if the driver could not
    /// be reached. An error answer panics with what the driver said.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let (status, v) = self.call_raw(method, path, body)?;
        assert!(status < 400, "WebDriver {method} {path}: {status} {v}");
        Some(v["value"].clone())
    }

    /// One WebDriver call: its status and JSON answer, `None` if the driver
    /// could not be reached.
    fn call_raw(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        };
        let mut resp = resp.ok()?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().ok()?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Some((status, v))
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` and waits for it (WebDriver's default page-load strategy).
    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .expect("navigate");
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn js(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.call("POST", &self.session_path("/execute/sync"), Some(body))
            .expect("execute script")
    }

    /// The text of the element with id `id` ("" if there is none).
    pub fn text(&self, id: &str) -> String {
        let script =
            format!("const e = document.getElementById({id:?}); return e ? e.textContent : '';");
        self.js(&script).as_str().unwrap_or("").to_string()
    }

    /// Polls `script` until it returns `true`; panics after `within`,
    /// naming `what` and showing the page's status elements.
    pub fn wait_for(&self, what: &str, within: Duration, script: &str) {
        let ok = poll_until(Instant::now() + within, || {
            // Paced: each try is a round trip through the driver.
            thread::sleep(Duration::from_millis(20));
            self.js(script) == json!(true)
        });
        assert!(
            ok,
            "page: {what} did not happen within {within:?}; #status={:?} #push-result={:?} #events={:?}",
            self.text("status"),
            self.text("push-result"),
            self.text("events")
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Not `call`: a panic here, during a failing test's unwinding,
            // would abort the whole test binary.
            let _ = self.call_raw("DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
