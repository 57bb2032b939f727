//! The deploy files that tests/proxies.rs does not run: the systemd unit
//! (checked with `systemd-analyze verify` where it exists) and the
//! Dockerfile (no Docker daemon is assumed: its stages, the paths it
//! copies, `EXPOSE`, and its `HEALTHCHECK` command run with bash against a
//! real server).

mod common;
#[path = "proxies/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;

use common::*;
use tools::{Scratch, deploy_file};

const BIN: &str = "/usr/local/bin/event-syncer";

#[test]
fn the_systemd_unit_verifies() {
    let unit = deploy_file(
        "deploy/systemd/event-syncer@.service",
        &[(BIN, env!("CARGO_BIN_EXE_event-syncer").to_string())],
    );
    for needed in [
        "LimitNOFILE=",
        "Restart=on-failure",
        "User=event-syncer",
        "--listen 127.0.0.1:%i",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        eprintln!(
            "\n!!!!!!!! SKIPPED !!!!!!!! systemd-analyze is not installed: \
             deploy/systemd/event-syncer@.service was not verified\n"
        );
        return;
    };
    let dir = Scratch::new("systemd");
    let path = dir.path("event-syncer@3031.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {text}");
    // It warns without failing for a unit of its own file.
    let own: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("event-syncer@"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze verify: {own:?}");
}

/// The Dockerfile's instructions, continuation lines joined, comments out.
fn instructions() -> Vec<(String, String)> {
    let text = deploy_file("Dockerfile", &[]);
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let (word, rest) = full.split_once(' ').unwrap_or((&full, ""));
        out.push((word.to_ascii_uppercase(), rest.trim().to_string()));
    }
    out
}

#[test]
fn the_dockerfile_builds_from_paths_that_exist_and_checks_health() {
    let steps = instructions();
    let froms: Vec<&str> = steps
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a small final stage: {froms:?}"
    );
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(
        froms[1].contains("-slim"),
        "the final image is small: {froms:?}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut copied_binary = None;
    for (_, rest) in steps.iter().filter(|(w, _)| w == "COPY") {
        let parts: Vec<&str> = rest.split_whitespace().collect();
        if parts[0] == "--from=build" {
            assert_eq!(parts[1], "/src/target/release/event-syncer");
            copied_binary = Some(parts[2].to_string());
            continue;
        }
        for source in &parts[..parts.len() - 1] {
            assert!(root.join(source).exists(), "COPY {source}: no such path");
        }
    }
    let entry = steps
        .iter()
        .find(|(w, _)| w == "ENTRYPOINT")
        .map(|(_, r)| r.clone());
    assert_eq!(entry, copied_binary.map(|b| format!("[\"{b}\"]")));
    let run = steps
        .iter()
        .find(|(w, r)| w == "RUN" && r.contains("cargo build"))
        .expect("the build stage runs cargo build");
    assert!(
        run.1.contains("--release") && run.1.contains("--locked"),
        "{run:?}"
    );
    let listen = steps
        .iter()
        .find_map(|(w, r)| {
            (w == "ENV")
                .then(|| r.strip_prefix("EVENT_SYNCER_LISTEN="))
                .flatten()
        })
        .expect("ENV EVENT_SYNCER_LISTEN");
    let port = listen.rsplit(':').next().unwrap_or("");
    assert!(
        steps.iter().any(|(w, r)| w == "EXPOSE" && r == port),
        "EXPOSE {port}"
    );

    // The HEALTHCHECK command, run with bash against a real server: 0 when
    // it answers, not 0 when nothing listens.
    let health = steps
        .iter()
        .find(|(w, _)| w == "HEALTHCHECK")
        .map(|(_, r)| r.clone())
        .expect("HEALTHCHECK");
    let cmd = &health[health.find("CMD ").expect("HEALTHCHECK ... CMD") + 4..];
    let argv: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert!(argv.join(" ").contains("/healthz"), "{argv:?}");
    let server = Server::start(&[]);
    let probe = |listen: &str| {
        Command::new(&argv[0])
            .args(&argv[1..])
            .env("EVENT_SYNCER_LISTEN", listen)
            .output()
            .expect("run the health check")
            .status
            .success()
    };
    assert!(
        probe(&server.addr().to_string()),
        "healthy server reported unhealthy"
    );
    let addr = server.addr().to_string();
    drop(server);
    assert!(!probe(&addr), "a stopped server reported healthy");
}
