//! SPEC.md "Who may do what (v2)", browsers, end to end: the example page
//! `examples/browser/index.html`, served from an origin of its own (another
//! port), in headless Chromium driven over WebDriver.
//!
//! (a) With the page's origin in `--cors-origin` and a token, the page
//!     receives what the test pushes, acks its leased batches (which it can
//!     only do if `Batch-Id` is exposed to it), and pushes from its form.
//! (b) With its origin not listed, the page's calls fail, and the server
//!     is seen to have refused them itself (its `origin` rejection counter)
//!     while the group's events wait intact for a real consumer. The page
//!     sends no token there, so its calls are "simple" requests that reach
//!     the server without a preflight: what stops them is the server's
//!     cross-site rule, not the browser.
//!
//! Without Chromium and chromedriver the tests say so loudly and pass,
//! unless `CI` is set: CI installs both (`.ci/run`) and must run these.

mod authkit;
mod common;
mod webdriver;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use authkit::*;
use common::*;
use serde_json::json;
use webdriver::{Browser, find_program, serve_page};

const PAGE: &str = include_str!("../examples/browser/index.html");

/// One browser at a time: two Chromiums at once on a small machine only
/// make both slower.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// chromedriver and Chromium, or `None` (after saying why) when they are
/// not installed and this is not CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let driver = find_program("CHROMEDRIVER", &["chromedriver"]);
    let chromium = find_program(
        "CHROME_BIN",
        &["chromium", "chromium-browser", "google-chrome", "chrome"],
    );
    match (driver, chromium) {
        (Some(d), Some(c)) => Some((d, c)),
        (d, c) => {
            let msg = format!(
                "\n!!!!! BROWSER TEST NOT RUN: chromedriver {d:?}, chromium {c:?} \
                 (install Debian's chromium and chromium-driver) !!!!!\n"
            );
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("{msg}");
            None
        }
    }
}

/// The page's URL with its settings in the query string.
fn page_url(port: u16, server: &Server, key: &str, group: &str, extra: &str) -> String {
    format!(
        "http://127.0.0.1:{port}/index.html?server={}&key={key}&group={group}&wait=20{extra}",
        enc(&server.url(""))
    )
}

fn count(selector: &str, n: usize) -> String {
    format!("return document.querySelectorAll({selector:?}).length >= {n};")
}

fn starts_with(id: &str, prefix: &str) -> String {
    format!("return (document.getElementById({id:?}).textContent || '').startsWith({prefix:?});")
}

const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn an_allowed_page_consumes_acks_and_pushes() {
    let Some((driver, chromium)) = tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let port = serve_page(PAGE);
    let origin = format!("http://127.0.0.1:{port}");
    let server = hs256_server(&["--cors-origin", &origin]);
    let page_token = token(&claims(&["web.k"], &["web.k"], Some(&["page"])));
    let admin = root_token();

    let browser = Browser::start(&driver, &chromium);
    let extra = format!("&lease=30&token={}", enc(&page_token));
    browser.goto(&page_url(port, &server, "web.k", "page", &extra));
    browser.wait_for("status waiting", WITHIN, &starts_with("status", "waiting"));
    wait_parked(&server, 1);

    for n in 1..=2 {
        let (status, body, _) = push_as(&server, Some(&admin), "web.k", &format!(r#"{{"n":{n}}}"#));
        assert_eq!(status, 200, "{body}");
    }
    browser.wait_for("two events listed", WITHIN, &count("#events li", 2));
    let listed =
        browser.js("return [...document.querySelectorAll('#events li')].map(e => e.textContent);");
    assert_eq!(
        listed,
        json!([r#"{"n":1}"#, r#"{"n":2}"#]),
        "in push order, once each"
    );
    // Acked by the page: no batch is leased any more.
    browser.wait_for(
        "a batch acked",
        WITHIN,
        "return Number(document.getElementById('acks').textContent) >= 1;",
    );
    let leased = poll_until(secs(10.0), || {
        metric(&server, "event_syncer_leased_batches") == Some(0)
    });
    assert!(leased, "the page's acks did not reach the server");

    browser.js(
        r#"document.getElementById('push-body').value = '{"from":"page"}';
                 document.getElementById('push-send').click();"#,
    );
    browser.wait_for(
        "push answered",
        WITHIN,
        &starts_with("push-result", "pushed "),
    );
    // A real consumer of another group sees the page's event with the rest.
    let all = events_left(&server, "web.k", "audit");
    assert_eq!(all, json!([{"n":1}, {"n":2}, {"from":"page"}]));
    assert_eq!(
        browser.text("errors"),
        "0",
        "status {:?}",
        browser.text("status")
    );
}

#[test]
fn a_page_from_an_unlisted_origin_changes_nothing() {
    let Some((driver, chromium)) = tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let port = serve_page(PAGE);
    // Another port of the same host: a different origin, same site.
    let server = Server::start(&["--cors-origin", "http://127.0.0.1:1"]);
    for n in 1..=2 {
        assert_eq!(push(&server, "web.k", format!("{n}")), 200);
    }

    let browser = Browser::start(&driver, &chromium);
    browser.goto(&page_url(port, &server, "web.k", "page", ""));
    browser.wait_for(
        "two failed polls",
        WITHIN,
        "return Number(document.getElementById('errors').textContent) >= 2;",
    );
    browser.js("document.getElementById('push-send').click();");
    browser.wait_for("push failed", WITHIN, &starts_with("push-result", "error"));
    assert_eq!(
        browser.text("events"),
        "",
        "the page must have received nothing"
    );
    assert_eq!(browser.text("polls"), "0");

    // The server refused them itself: at least two polls and the push.
    let refused = metric(&server, &rejected_metric("origin")).unwrap_or(0);
    assert!(refused >= 3, "origin refusals counted: {refused}");
    drop(browser);
    assert_eq!(
        take(&server, "web.k", "page"),
        "[1,2]",
        "the page's group lost events"
    );
    assert_eq!(
        take(&server, "web.k", "other"),
        "[1,2]",
        "the page's push was stored"
    );
}
