//! A Telemetry API subscription (`PUT /2022-07-01/telemetry`) read and checked against
//! Lambda's rules: schema version, types, buffering bounds, and an HTTP destination on the
//! sandbox's loopback. Plain parsing, no I/O.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

/// Schema versions Lambda accepts.
pub const SCHEMAS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];

/// What a subscriber asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub platform: bool,
    pub function: bool,
    pub extension: bool,
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Where batches go (a `sandbox.localdomain` destination is the loopback).
    pub destination: SocketAddr,
    pub path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    schema_version: String,
    destination: Destination,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    buffering: Buffering,
}

#[derive(Deserialize)]
struct Destination {
    protocol: String,
    #[serde(rename = "URI")]
    uri: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Buffering {
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    timeout_ms: Option<u64>,
}

impl Subscription {
    /// Reads a `PUT /telemetry` body, with Lambda's bounds; the error says what is wrong.
    pub fn parse(body: &[u8]) -> Result<Subscription, String> {
        let req: Request =
            serde_json::from_slice(body).map_err(|e| format!("invalid subscription: {e}"))?;
        if !SCHEMAS.contains(&req.schema_version.as_str()) {
            return Err(format!(
                "unsupported schemaVersion {:?}; expected one of {SCHEMAS:?}",
                req.schema_version
            ));
        }
        if req.destination.protocol != "HTTP" {
            return Err("destination.protocol must be \"HTTP\"".into());
        }
        let (destination, path) = destination(&req.destination.uri)?;
        let mut sub = Subscription {
            platform: false,
            function: false,
            extension: false,
            max_items: bounded("maxItems", req.buffering.max_items, 1_000, 10_000, 10_000)?,
            max_bytes: bounded(
                "maxBytes",
                req.buffering.max_bytes,
                262_144,
                1_048_576,
                262_144,
            )?,
            timeout: Duration::from_millis(bounded(
                "timeoutMs",
                req.buffering.timeout_ms,
                25,
                30_000,
                1_000,
            )? as u64),
            destination,
            path,
        };
        for t in &req.types {
            match t.as_str() {
                "platform" => sub.platform = true,
                "function" => sub.function = true,
                "extension" => sub.extension = true,
                other => return Err(format!("unknown telemetry type {other:?}")),
            }
        }
        Ok(sub)
    }
}

fn bounded(field: &str, v: Option<u64>, min: u64, max: u64, default: u64) -> Result<usize, String> {
    match v {
        None => Ok(default as usize),
        Some(v) if (min..=max).contains(&v) => Ok(v as usize),
        Some(v) => Err(format!(
            "buffering.{field} is {v}; it must be from {min} to {max}"
        )),
    }
}

/// `http://sandbox.localdomain:PORT/path` (or a loopback host) as an address and a path.
fn destination(uri: &str) -> Result<(SocketAddr, String), String> {
    let bad = || format!("destination.URI {uri:?} must be http://sandbox.localdomain:PORT[/path]");
    let uri: http::Uri = uri.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    if !matches!(host, "sandbox.localdomain" | "localhost" | "127.0.0.1") {
        return Err(bad());
    }
    let port = uri.port_u16().ok_or_else(bad)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((SocketAddr::from((Ipv4Addr::LOCALHOST, port)), path))
}
