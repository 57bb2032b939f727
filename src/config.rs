//! Configuration: every setting of SPEC.md's table, as a flag and an
//! environment variable, parsed by `clap` and checked once at start.
//!
//! Durations are decimal seconds on the command line (`0.5`) and whole
//! milliseconds inside the server, because the timer wheel ticks in
//! milliseconds. The same decimal parser serves the `timeout=` query
//! parameter of `/blocking-get`, so "what is a duration" is answered in one
//! place. A bad value is refused with the setting's name and exit code 2
//! (clap's code for usage errors).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand, ValueEnum};

/// Milliseconds: the unit of every duration inside the server.
pub type Millis = u64;

/// File descriptors kept back from `--max-connections` for the listener, the
/// poll instance, the signal pipe, logs and a margin.
pub const RESERVED_FDS: u64 = 32;

/// The default `--max-connections` never exceeds this, whatever the fd
/// limit (SPEC.md: hosts with `LimitNOFILE=infinity` have about 2^30).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1_000_000;

/// The longest duration a setting may have: a year, so that deadlines never
/// overflow and a typo (`--poll-timeout 30000000000`) is caught.
const MAX_SETTING_MS: Millis = 365 * 24 * 3600 * 1000;

/// The command line, as `clap` sees it.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "event-syncer",
    version,
    about = "An HTTP long-poll event queue"
)]
pub struct Cli {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "EVENT_SYNCER_LISTEN", default_value = "127.0.0.1:3031")]
    pub listen: SocketAddr,
    /// Longest a blocking-get waits, in seconds.
    #[arg(long, env = "EVENT_SYNCER_POLL_TIMEOUT", default_value = "30", value_parser = setting_seconds, allow_hyphen_values = true)]
    pub poll_timeout: Millis,
    /// How long an event lives after its push, in seconds.
    #[arg(long, env = "EVENT_SYNCER_EVENT_TTL", default_value = "120", value_parser = setting_seconds, allow_hyphen_values = true)]
    pub event_ttl: Millis,
    /// Largest push body, in bytes.
    #[arg(long, env = "EVENT_SYNCER_MAX_BODY", default_value = "1048576", value_parser = positive_bytes, allow_hyphen_values = true)]
    pub max_body: u64,
    /// Most live event bytes the store holds before pushes get 503.
    #[arg(long, env = "EVENT_SYNCER_MAX_MEMORY", default_value = "1073741824", value_parser = positive_bytes, allow_hyphen_values = true)]
    pub max_memory: u64,
    /// Most connections open at once (default: what the fd limit allows).
    #[arg(long, env = "EVENT_SYNCER_MAX_CONNECTIONS", value_parser = positive_bytes, allow_hyphen_values = true)]
    pub max_connections: Option<u64>,
    /// Longest a client may take to send a request head, in seconds.
    #[arg(long, env = "EVENT_SYNCER_HEADER_TIMEOUT", default_value = "10", value_parser = setting_seconds, allow_hyphen_values = true)]
    pub header_timeout: Millis,
    /// Longest a keep-alive connection may sit idle between requests, in seconds.
    #[arg(long, env = "EVENT_SYNCER_IDLE_TIMEOUT", default_value = "60", value_parser = setting_seconds, allow_hyphen_values = true)]
    pub idle_timeout: Millis,
    /// Log level: off, error, warn, info, debug or trace.
    #[arg(long, env = "EVENT_SYNCER_LOG", default_value = "info")]
    pub log_level: log::LevelFilter,
    /// Log one line per answered request.
    #[arg(long, env = "EVENT_SYNCER_ACCESS_LOG", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub access_log: bool,
    /// Keep a log of the store in this directory and replay it on start
    /// (default: memory only).
    #[arg(long, env = "EVENT_SYNCER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When the data directory's log is flushed to disk.
    #[arg(
        long,
        env = "EVENT_SYNCER_FSYNC",
        value_enum,
        default_value = "everysec"
    )]
    pub fsync: Fsync,
    /// Require HS256 JWTs signed with the secret in this file.
    #[arg(
        long,
        env = "EVENT_SYNCER_JWT_SECRET_FILE",
        conflicts_with = "jwt_public_key_file"
    )]
    pub jwt_secret_file: Option<PathBuf>,
    /// Require JWTs signed by the key in this PEM file (RS256, ES256 or EdDSA).
    #[arg(long, env = "EVENT_SYNCER_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Require this bearer secret for /metrics.
    #[arg(long, env = "EVENT_SYNCER_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// A page origin allowed to call the server from a browser, or `*`
    /// (repeatable; comma-separated in the environment variable).
    #[arg(long, env = "EVENT_SYNCER_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// A tool instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands: tools that run instead of the server.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print an HS256 token for scripts and tests.
    Token(TokenArgs),
}

/// `event-syncer token`: what the minted token allows.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenArgs {
    /// The HS256 secret, as given to `--jwt-secret-file`.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Key patterns the token may push to (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub push: Vec<String>,
    /// Key patterns the token may consume from.
    #[arg(long, value_delimiter = ',')]
    pub consume: Vec<String>,
    /// GroupId patterns the token may consume as (default: any).
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
    /// Lifetime in seconds (default: one hour).
    #[arg(long, default_value = "3600", value_parser = setting_seconds)]
    pub ttl: Millis,
}

/// `--fsync`: when the log is flushed to disk.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before each answer the log backs (group commit: once per loop turn).
    Always,
    /// About once a second, on a helper thread.
    Everysec,
    /// When the kernel decides.
    Never,
}

impl Fsync {
    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::Never => "never",
        }
    }
}

/// The effective settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Longest park of a blocking-get.
    pub poll_timeout: Millis,
    /// Lifetime of an event after its push.
    pub event_ttl: Millis,
    /// Largest request body.
    pub max_body: usize,
    /// Most live event bytes (JSON plus bookkeeping) the store holds.
    pub max_memory: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest a request head may take to arrive.
    pub header_timeout: Millis,
    /// Longest a keep-alive connection may idle.
    pub idle_timeout: Millis,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// One log line per answered request.
    pub access_log: bool,
    /// Where the store's log lives; `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// When that log is flushed to disk.
    pub fsync: Fsync,
    /// The HS256 secret's file.
    pub jwt_secret_file: Option<PathBuf>,
    /// The PEM public key's file.
    pub jwt_public_key_file: Option<PathBuf>,
    /// The `/metrics` bearer secret's file.
    pub metrics_token_file: Option<PathBuf>,
    /// Page origins allowed to call the server (`*`: any).
    pub cors_origins: Vec<String>,
}

impl Config {
    /// Checks the command line against the process's file-descriptor limit
    /// (`fd_limit`, after the soft limit was raised to the hard one) and
    /// fills in the defaults that depend on it.
    pub fn resolve(cli: Cli, fd_limit: u64) -> Result<Config, String> {
        let allowed = fd_limit.saturating_sub(RESERVED_FDS).max(1);
        let max_connections = match cli.max_connections {
            None => allowed.min(DEFAULT_MAX_CONNECTIONS),
            Some(n) if n <= allowed => n,
            Some(n) => {
                return Err(format!(
                    "--max-connections {n} is more than the file-descriptor limit allows \
                     ({fd_limit} descriptors, {RESERVED_FDS} kept for the server: at most {allowed}); \
                     raise `ulimit -n` or lower the setting"
                ));
            }
        };
        let to_usize = |name: &str, v: u64| {
            usize::try_from(v).map_err(|_| format!("--{name} {v} does not fit in memory"))
        };
        Ok(Config {
            listen: cli.listen,
            poll_timeout: cli.poll_timeout,
            event_ttl: cli.event_ttl,
            max_body: to_usize("max-body", cli.max_body)?,
            max_memory: to_usize("max-memory", cli.max_memory)?,
            max_connections: to_usize("max-connections", max_connections)?,
            header_timeout: cli.header_timeout,
            idle_timeout: cli.idle_timeout,
            log_level: cli.log_level,
            access_log: cli.access_log,
            data_dir: cli.data_dir,
            fsync: cli.fsync,
            jwt_secret_file: cli.jwt_secret_file,
            jwt_public_key_file: cli.jwt_public_key_file,
            metrics_token_file: cli.metrics_token_file,
            cors_origins: cli.cors_origin,
        })
    }

    /// Every effective setting as `name=value` pairs, numbers written plainly
    /// (bytes as bytes, seconds as seconds), for the startup line.
    pub fn describe(&self) -> String {
        format!(
            "poll_timeout={} event_ttl={} max_body={} max_memory={} max_connections={} \
             header_timeout={} idle_timeout={} log_level={} access_log={} data_dir={} fsync={}",
            seconds(self.poll_timeout),
            seconds(self.event_ttl),
            self.max_body,
            self.max_memory,
            self.max_connections,
            seconds(self.header_timeout),
            seconds(self.idle_timeout),
            self.log_level.as_str().to_ascii_lowercase(),
            if self.access_log { "on" } else { "off" },
            self.data_dir
                .as_ref()
                .map_or("none".to_string(), |d| d.display().to_string()),
            self.fsync.as_str(),
        )
    }
}

/// Writes milliseconds as seconds, without trailing zeros: `30s`, `0.25s`.
pub fn seconds(ms: Millis) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{whole}s")
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{}s", digits.trim_end_matches('0'))
    }
}

/// Parses a plain decimal number of seconds (`0`, `2`, `0.25`) into
/// milliseconds, rounding a fraction of a millisecond up so a deadline is
/// never earlier than asked. Signs, exponents, `nan`, `inf`, units and the
/// empty string are not plain decimals: `None`. Values too large for a `u64`
/// saturate; callers cap them.
pub fn parse_seconds(text: &str) -> Option<Millis> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let mut ms: Millis = 0;
    for b in whole.bytes() {
        ms = ms.saturating_mul(10).saturating_add(Millis::from(b - b'0'));
    }
    ms = ms.saturating_mul(1000);
    let mut scale = 100;
    for (i, b) in frac.bytes().enumerate() {
        let digit = Millis::from(b - b'0');
        if i < 3 {
            ms = ms.saturating_add(digit * scale);
            scale /= 10;
        } else if digit != 0 {
            // Below a millisecond: round up, once.
            return Some(ms.saturating_add(1));
        }
    }
    Some(ms)
}

fn setting_seconds(text: &str) -> Result<Millis, String> {
    match parse_seconds(text) {
        None => Err(format!(
            "`{text}` is not a number of seconds (a plain decimal such as 30 or 0.5)"
        )),
        Some(0) => Err("must be more than 0 seconds".to_string()),
        Some(ms) if ms > MAX_SETTING_MS => Err("must be at most a year".to_string()),
        Some(ms) => Ok(ms),
    }
}

fn positive_bytes(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! secs {
        ($($name:ident: $text:expr => $want:expr;)*) => {
            $(#[test] fn $name() { assert_eq!(parse_seconds($text), $want, "{:?}", $text); })*
        };
    }

    secs! {
        zero: "0" => Some(0);
        whole: "2" => Some(2000);
        quarter: "0.25" => Some(250);
        leading_dot: ".5" => Some(500);
        trailing_dot: "3." => Some(3000);
        sub_milli_rounds_up: "0.0001" => Some(1);
        milli_exact: "0.001" => Some(1);
        trailing_zeros: "1.5000000" => Some(1500);
        huge_saturates: "99999999999999999999999" => Some(u64::MAX);
        negative: "-1" => None;
        plus: "+1" => None;
        nan: "nan" => None;
        inf: "inf" => None;
        unit: "1s" => None;
        exponent: "1e3" => None;
        empty: "" => None;
        lone_dot: "." => None;
        two_dots: "1.2.3" => None;
        space: " 1" => None;
    }

    #[test]
    fn seconds_are_written_plainly() {
        assert_eq!(seconds(30_000), "30s");
        assert_eq!(seconds(250), "0.25s");
        assert_eq!(seconds(1_500), "1.5s");
        assert_eq!(seconds(1), "0.001s");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = Cli::try_parse_from(["event-syncer", "--poll-timeout", "-1"]).unwrap_err();
        assert!(err.to_string().contains("--poll-timeout"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["event-syncer", "--max-body", "0"]).unwrap_err();
        assert!(err.to_string().contains("--max-body"), "{err}");
    }

    #[test]
    fn defaults_are_the_spec_table() {
        let config =
            Config::resolve(Cli::try_parse_from(["event-syncer"]).unwrap(), 20_000).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 3031)));
        assert_eq!(
            (
                config.poll_timeout,
                config.event_ttl,
                config.header_timeout,
                config.idle_timeout
            ),
            (30_000, 120_000, 10_000, 60_000)
        );
        assert_eq!(
            (config.max_body, config.max_memory),
            (1_048_576, 1_073_741_824)
        );
        assert_eq!(config.log_level, log::LevelFilter::Info);
    }

    #[test]
    fn a_huge_fd_limit_gives_at_most_a_million_connections() {
        let cli = Cli::try_parse_from(["event-syncer"]).unwrap();
        let config = Config::resolve(cli, 1 << 30).unwrap();
        assert_eq!(config.max_connections, 1_000_000);
        let cli = Cli::try_parse_from(["event-syncer", "--max-connections", "2000000"]).unwrap();
        assert_eq!(
            Config::resolve(cli, 1 << 30).unwrap().max_connections,
            2_000_000
        );
    }

    #[test]
    fn max_connections_defaults_to_the_fd_limit() {
        let cli = Cli::try_parse_from(["event-syncer"]).unwrap();
        let config = Config::resolve(cli, 20_000).unwrap();
        assert_eq!(config.max_connections, 20_000 - RESERVED_FDS as usize);
        let cli = Cli::try_parse_from(["event-syncer", "--max-connections", "50000"]).unwrap();
        assert!(
            Config::resolve(cli, 20_000)
                .unwrap_err()
                .contains("--max-connections")
        );
    }
}
