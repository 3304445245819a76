//! The outbound allow-list of WebAssembly components (`WASM_ALLOWED_OUTBOUND_HOSTS`): which
//! origins (`scheme://host:port`) a guest's outgoing HTTP requests may reach. Pure: parsing and
//! matching only; it opens no connection and logs nothing (the HTTP invoker does both).

use std::fmt;

/// A parsed allow-list; empty denies everything (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Origin>,
}

/// One allowed origin pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: Pattern,
    host: Host,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Is(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    /// `*.example.com`: any name below `example.com` (not `example.com` itself).
    Below(String),
    Is(String),
}

/// An entry of `WASM_ALLOWED_OUTBOUND_HOSTS` that is not `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WASM_ALLOWED_OUTBOUND_HOSTS entry {entry:?}: {reason}")]
pub struct Malformed {
    pub entry: String,
    pub reason: &'static str,
}

const SCHEMES: [&str; 2] = ["http", "https"];

impl AllowList {
    /// Parses comma-separated `scheme://host:port` entries (`*` for any scheme, host or
    /// port, `*.domain` for any name below a domain; a missing port is the scheme's own).
    /// Blank entries are ignored, so an empty value denies everything.
    pub fn parse(value: &str) -> Result<AllowList, Malformed> {
        let entries = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Origin::parse)
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request to `scheme://host:port` may go out; `port` `None` is the scheme's
    /// default. Names compare without case; an IPv6 host may come with or without brackets.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(&scheme)) else {
            return false;
        };
        let host = normalize_host(host);
        self.entries.iter().any(|o| o.matches(&scheme, &host, port))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return f.write_str("(none)");
        }
        for (i, o) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let scheme = match &o.scheme {
                Pattern::Any => "*",
                Pattern::Is(s) => s,
            };
            let host = match &o.host {
                Host::Any => "*".to_string(),
                Host::Below(d) => format!("*.{d}"),
                Host::Is(h) if h.contains(':') => format!("[{h}]"),
                Host::Is(h) => h.clone(),
            };
            match o.port {
                Some(p) => write!(f, "{scheme}://{host}:{p}")?,
                None => write!(f, "{scheme}://{host}:*")?,
            }
        }
        Ok(())
    }
}

impl Origin {
    fn parse(entry: &str) -> Result<Origin, Malformed> {
        let bad = |reason| Malformed {
            entry: entry.to_string(),
            reason,
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host:port"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => Pattern::Any,
            s if SCHEMES.contains(&s) => Pattern::Is(s.to_string()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("only scheme://host:port: no path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("malformed host:port"))?;
        let host = parse_host(host).ok_or_else(|| bad("malformed host"))?;
        let port = match port {
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be 1-65535 or *"))?,
            ),
            None => match &scheme {
                Pattern::Is(s) => default_port(s),
                Pattern::Any => return Err(bad("a * scheme needs a port (or :*)")),
            },
        };
        Ok(Origin { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match &self.scheme {
            Pattern::Any => SCHEMES.contains(&scheme),
            Pattern::Is(s) => s == scheme,
        };
        let host_ok = match &self.host {
            Host::Any => true,
            Host::Below(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|h| h.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
            Host::Is(h) => h == host,
        };
        scheme_ok && host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// `host[:port]`, with `[v6]` hosts.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

fn parse_host(h: &str) -> Option<Host> {
    let h = h.to_ascii_lowercase();
    if h == "*" {
        return Some(Host::Any);
    }
    if h.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(Host::Is(h));
    }
    let (below, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, h),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    match (valid, below) {
        (false, _) => None,
        (true, true) => Some(Host::Below(name)),
        (true, false) => Some(Host::Is(name)),
    }
}

fn normalize_host(h: &str) -> String {
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
