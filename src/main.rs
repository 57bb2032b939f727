//! The `event-syncer` binary: parse the settings, set up logging and the
//! file-descriptor limit, then hand over to the event loop.

use std::process::ExitCode;

use clap::Parser;
use event_syncer::config::{Cli, Command, Config};
use event_syncer::server::{Server, StartError};
use log::{error, info};

fn main() -> ExitCode {
    // clap prints the error naming the setting and exits with code 2.
    let cli = Cli::parse();
    if let Some(Command::Token(args)) = &cli.command {
        return match event_syncer::mint_token(args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("event-syncer token: {message}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(cli.log_level)
        .init()
    {
        eprintln!("event-syncer: cannot set up logging: {e}");
        return ExitCode::from(2);
    }
    let fd_limit = raise_fd_limit();
    let config = match Config::resolve(cli, fd_limit) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("event-syncer: {message}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(config.clone()) {
        Ok(server) => server,
        Err(StartError::Settings(message)) => {
            eprintln!("event-syncer: {message}");
            return ExitCode::from(2);
        }
        Err(StartError::Io(e)) => {
            error!("cannot listen on {}: {e}", config.listen);
            return ExitCode::from(2);
        }
    };
    info!(
        "event-syncer listening on http://{} {} {}",
        server.local_addr(),
        config.describe(),
        server.describe_guard()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that the
/// default `--max-connections` is as large as the system allows, and
/// returns the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}
