//! What a token allows: the `event_syncer` claim and its patterns.
//!
//! SPEC.md: `{"push": [patterns], "consume": [patterns], "groups":
//! [patterns]}`, a pattern being an exact key (or groupId), or a prefix
//! ending in `*`, `"*"` alone matching everything. Patterns are compiled
//! once, when a token is first verified, so a cached token costs a few
//! string comparisons per request.

use serde::{Deserialize, Serialize};

/// One pattern, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: anything.
    Any,
    /// `orders.*`: anything starting with `orders.`.
    Prefix(String),
    /// `orders`: exactly that.
    Exact(String),
}

impl Pattern {
    /// Compiles the text of a pattern.
    pub fn new(text: &str) -> Pattern {
        match text.strip_suffix('*') {
            Some("") => Pattern::Any,
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(text.to_string()),
        }
    }

    /// Whether `name` (a decoded key or groupId) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Exact(exact) => name == exact,
        }
    }
}

/// The claim as it is written in a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Keys the bearer may push to.
    #[serde(default)]
    pub push: Vec<String>,
    /// Keys the bearer may consume from.
    #[serde(default)]
    pub consume: Vec<String>,
    /// GroupIds the bearer may consume as; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// What a verified token allows, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    push: Vec<Pattern>,
    consume: Vec<Pattern>,
    groups: Option<Vec<Pattern>>,
}

/// What a request wants to do, for [`Grants::allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Push to this key.
    Push {
        /// The decoded key.
        key: &'a str,
    },
    /// Take, ack, nack or extend as this group of this key.
    Consume {
        /// The decoded key.
        key: &'a str,
        /// The decoded groupId.
        group: &'a str,
    },
}

impl Grants {
    /// Compiles a claim.
    pub fn new(claim: &Claim) -> Grants {
        let compile = |texts: &[String]| texts.iter().map(|t| Pattern::new(t)).collect();
        Grants {
            push: compile(&claim.push),
            consume: compile(&claim.consume),
            groups: claim.groups.as_deref().map(compile),
        }
    }

    /// Whether the token allows `action`.
    pub fn allow(&self, action: Action<'_>) -> bool {
        let any = |patterns: &[Pattern], name: &str| patterns.iter().any(|p| p.matches(name));
        match action {
            Action::Push { key } => any(&self.push, key),
            Action::Consume { key, group } => {
                any(&self.consume, key) && self.groups.as_ref().is_none_or(|g| any(g, group))
            }
        }
    }

    /// Bytes this takes in the token cache, roughly.
    pub fn footprint(&self) -> usize {
        let patterns = self.push.iter().chain(&self.consume);
        let patterns = patterns.chain(self.groups.iter().flatten());
        patterns
            .map(|p| {
                std::mem::size_of::<Pattern>()
                    + match p {
                        Pattern::Any => 0,
                        Pattern::Prefix(s) | Pattern::Exact(s) => s.len(),
                    }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(push: &[&str], consume: &[&str], groups: Option<&[&str]>) -> Grants {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Grants::new(&Claim {
            push: own(push),
            consume: own(consume),
            groups: groups.map(own),
        })
    }

    macro_rules! pattern {
        ($($name:ident: $pattern:expr, $text:expr => $want:expr;)*) => {
            $(#[test] fn $name() { assert_eq!(Pattern::new($pattern).matches($text), $want); })*
        };
    }

    pattern! {
        star_matches_all: "*", "anything" => true;
        star_matches_empty: "*", "" => true;
        exact_matches_itself: "orders", "orders" => true;
        exact_is_not_a_prefix: "orders", "orders2" => false;
        exact_is_case_sensitive: "orders", "Orders" => false;
        prefix_matches_longer: "orders.*", "orders.eu" => true;
        prefix_matches_itself: "orders.*", "orders." => true;
        prefix_needs_its_text: "orders.*", "orders" => false;
        star_inside_is_literal: "a*b", "a*b" => true;
        star_inside_is_not_a_wildcard: "a*b", "axb" => false;
        multibyte_prefix: "ü*", "über" => true;
    }

    #[test]
    fn push_needs_push() {
        let g = grants(&["in.*"], &["*"], None);
        assert!(g.allow(Action::Push { key: "in.a" }));
        assert!(!g.allow(Action::Push { key: "out.a" }));
    }

    #[test]
    fn consume_needs_consume_and_groups_when_present() {
        let g = grants(&[], &["k"], Some(&["billing", "ops.*"]));
        assert!(g.allow(Action::Consume {
            key: "k",
            group: "billing"
        }));
        assert!(g.allow(Action::Consume {
            key: "k",
            group: "ops.1"
        }));
        assert!(!g.allow(Action::Consume {
            key: "k",
            group: "other"
        }));
        assert!(!g.allow(Action::Consume {
            key: "k2",
            group: "billing"
        }));
        assert!(!g.allow(Action::Push { key: "k" }));
    }

    #[test]
    fn absent_groups_allow_any_group_but_empty_groups_allow_none() {
        let any = grants(&[], &["k"], None);
        assert!(any.allow(Action::Consume {
            key: "k",
            group: "g"
        }));
        let none = grants(&[], &["k"], Some(&[]));
        assert!(!none.allow(Action::Consume {
            key: "k",
            group: "g"
        }));
    }

    #[test]
    fn the_claim_reads_its_json_form() {
        let claim: Claim = serde_json::from_str(r#"{"push":["a"],"groups":["g"]}"#).unwrap();
        assert_eq!(claim.push, ["a"]);
        assert!(claim.consume.is_empty());
        assert_eq!(claim.groups.as_deref(), Some(&["g".to_string()][..]));
    }
}
