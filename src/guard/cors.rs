//! Browsers: which page origins may call the server (CORS), and the
//! cross-site rule that keeps every other page out.
//!
//! CORS alone does not protect a queue. A browser sends a cross-site
//! "simple" request (a `POST` with a text body, a `GET`) without asking
//! first, and only hides the answer from the page: the event is stored, the
//! batch consumed. So SPEC.md adds a rule on the server's side: a request
//! whose `Origin` is not listed gets `403` and changes nothing, unless
//! `Sec-Fetch-Site: same-origin` says the page is the server's own. Requests
//! without `Origin` (curl, servers, old-style same-origin navigations) are
//! not from a cross-site page and pass as before.
//!
//! An allowed origin is remembered per request as an index into the list
//! (or "any"), two bytes a parked consumer can carry, and written out as
//! the header value when its answer is rendered.

/// How long a browser may cache a preflight answer, in seconds. Chromium
/// caps it at two hours; ten minutes lets a changed list take effect soon.
pub const MAX_AGE: &str = "600";
/// What a preflight allows: the methods of every endpoint.
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, OPTIONS";
/// The request headers a page may set.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type";
/// The answer headers a page may read.
pub const EXPOSE_HEADERS: &str = "Batch-Id, Batch-Attempt, Retry-After";

/// An origin found on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// The list is `*`.
    Any,
    /// Entry `i` of the list.
    Listed(u16),
}

/// The CORS headers an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorsReply {
    /// None: no `Origin`, or one not allowed.
    #[default]
    None,
    /// An ordinary answer to an allowed origin.
    Answer(Allowed),
    /// The answer to an allowed origin's preflight.
    Preflight(Allowed),
}

/// What a request's `Origin` means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin`, or the server's own page: as if no browser were
    /// involved.
    NotCrossSite,
    /// A listed origin.
    Allowed(Allowed),
    /// Any other page: `403`.
    Refused,
}

/// The origins of `--cors-origin`.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    /// Checks and normalises the list: each entry is `*` or a serialised
    /// origin (`scheme://host[:port]`, no path), compared case-insensitively.
    pub fn new(list: &[String]) -> Result<Cors, String> {
        let mut cors = Cors::default();
        for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                cors.any = true;
                continue;
            }
            let origin = entry.strip_suffix('/').unwrap_or(entry);
            let well_formed = origin.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' ', '@'])
            });
            if !well_formed && origin != "null" {
                return Err(format!(
                    "--cors-origin `{entry}` is not an origin: write it as a browser sends it, \
                     scheme://host[:port] (e.g. https://app.example.com), or `*`"
                ));
            }
            cors.origins.push(origin.to_ascii_lowercase());
        }
        if cors.origins.len() > usize::from(u16::MAX) {
            return Err("--cors-origin lists more than 65535 origins".to_string());
        }
        Ok(cors)
    }

    /// What `origin` and `sec_fetch_site` (raw header values) make of a
    /// request.
    pub fn judge(&self, origin: Option<&[u8]>, sec_fetch_site: Option<&[u8]>) -> Verdict {
        let Some(origin) = origin else {
            return Verdict::NotCrossSite;
        };
        if self.any {
            return Verdict::Allowed(Allowed::Any);
        }
        if let Some(i) = self
            .origins
            .iter()
            .position(|o| o.as_bytes().eq_ignore_ascii_case(origin))
        {
            // The list has at most u16::MAX entries (checked in `new`).
            return Verdict::Allowed(Allowed::Listed(i as u16));
        }
        match sec_fetch_site {
            Some(site) if site.eq_ignore_ascii_case(b"same-origin") => Verdict::NotCrossSite,
            _ => Verdict::Refused,
        }
    }

    /// The `Access-Control-Allow-Origin` value for an allowed origin.
    pub fn allow_origin(&self, allowed: Allowed) -> &str {
        match allowed {
            Allowed::Any => "*",
            Allowed::Listed(i) => self.origins.get(usize::from(i)).map_or("null", |o| o),
        }
    }

    /// The list as given, for the startup line.
    pub fn describe(&self) -> String {
        if self.any {
            return "*".to_string();
        }
        if self.origins.is_empty() {
            return "none".to_string();
        }
        self.origins.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(list: &[&str]) -> Cors {
        Cors::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn no_origin_is_not_cross_site() {
        assert_eq!(cors(&[]).judge(None, None), Verdict::NotCrossSite);
        assert_eq!(
            cors(&[]).judge(None, Some(b"cross-site")),
            Verdict::NotCrossSite
        );
    }

    #[test]
    fn a_listed_origin_is_allowed_in_any_case() {
        let c = cors(&["https://App.example", "http://127.0.0.1:8080/"]);
        assert_eq!(
            c.judge(Some(b"https://app.example"), Some(b"cross-site")),
            Verdict::Allowed(Allowed::Listed(0))
        );
        assert_eq!(
            c.judge(Some(b"http://127.0.0.1:8080"), None),
            Verdict::Allowed(Allowed::Listed(1))
        );
        assert_eq!(c.allow_origin(Allowed::Listed(1)), "http://127.0.0.1:8080");
    }

    #[test]
    fn an_unlisted_origin_is_refused_unless_same_origin() {
        let c = cors(&["https://app.example"]);
        for site in [
            None,
            Some(&b"cross-site"[..]),
            Some(b"same-site"),
            Some(b"none"),
        ] {
            assert_eq!(
                c.judge(Some(b"https://evil.example"), site),
                Verdict::Refused
            );
        }
        assert_eq!(
            c.judge(Some(b"https://evil.example"), Some(b"same-origin")),
            Verdict::NotCrossSite
        );
        // A port is part of the origin.
        assert_eq!(
            c.judge(Some(b"https://app.example:444"), None),
            Verdict::Refused
        );
        assert_eq!(c.judge(Some(b"null"), None), Verdict::Refused);
    }

    #[test]
    fn star_allows_every_origin() {
        let c = cors(&["*"]);
        assert_eq!(
            c.judge(Some(b"https://anyone.example"), None),
            Verdict::Allowed(Allowed::Any)
        );
        assert_eq!(c.allow_origin(Allowed::Any), "*");
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in [
            "example.com",
            "https://a.example/path",
            "https://",
            "://x",
            "http://a b",
        ] {
            assert!(Cors::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
