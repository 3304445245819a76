//! Value parsers for the settings clap does not parse itself: Go durations, sizes, ports
//! that may be `off`, counts where 0 is off, and a wrapper that gives blank values their
//! default. Pure functions of one string; the arguments that use them are in `args.rs`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};

pub(crate) const MIB: usize = 1 << 20;

/// Wraps a value parser so that a blank value (a variable set to `""`, as deployment
/// templates leave them) means the setting's default rather than an error, and surrounding
/// spaces are dropped: the host read its settings that way before clap parsed them.
#[derive(Clone)]
pub(crate) struct Blank<P>(pub P);

impl<P: TypedValueParser> TypedValueParser for Blank<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        match value.to_str().map(str::trim) {
            Some("") => match arg.and_then(|a| a.get_default_values().first()) {
                Some(default) => self.0.parse_ref(cmd, arg, default.as_ref()),
                None => self.0.parse_ref(cmd, arg, value),
            },
            Some(trimmed) => self.0.parse_ref(cmd, arg, OsStr::new(trimmed)),
            None => self.0.parse_ref(cmd, arg, value),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

/// A path that may be blank (unset), which clap's own path parser refuses.
pub(crate) fn path() -> impl TypedValueParser<Value = PathBuf> {
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// A port, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOrOff(pub Option<u16>);

pub(crate) fn parse_port_or_off(s: &str) -> Result<PortOrOff, String> {
    match s.trim() {
        "off" | "" => Ok(PortOrOff(None)),
        p => p
            .parse()
            .map(|p| PortOrOff(Some(p)))
            .map_err(|_| "expected a port number (0: any free port) or off".into()),
    }
}

/// A count where 0, `off` or blank switch the feature off (returned as 0).
pub(crate) fn parse_count_or_off(s: &str) -> Result<u64, String> {
    match s.trim() {
        "off" | "" => Ok(0),
        n => n
            .parse()
            .map_err(|_| "expected a whole number, or 0 or off".into()),
    }
}

/// A Go duration where 0, `off` or blank switch the feature off (returned as zero).
pub(crate) fn parse_duration_or_off(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "off" | "" => Ok(Duration::ZERO),
        d => go_duration(d),
    }
}

/// A memory size: a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB); a bare
/// number is MiB, as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
pub fn parse_memory(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("expected a size such as 128MiB, got {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "mi" | "mib" | "m" => MIB as f64,
        "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "mb" => 1e6,
        "g" | "gi" | "gib" => (1u64 << 30) as f64,
        "gb" => 1e9,
        u => {
            return Err(format!(
                "unknown unit {u:?} (use KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = n * mult;
    if !(65_536.0..=(4u64 << 30) as f64).contains(&bytes) {
        return Err("expected a size between 64KiB (one wasm page) and 4GiB".into());
    }
    Ok(bytes as usize)
}

/// A size in MB (10^6 bytes, as the Go runtime counts them); fractions allowed.
pub fn parse_megabytes(s: &str) -> Result<usize, String> {
    let mb: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of MB, got {s:?}"))?;
    if !mb.is_finite() || mb <= 0.0 || mb > 4096.0 {
        return Err("expected a number of MB above 0 and at most 4096".into());
    }
    Ok((mb * 1e6).round() as usize)
}

/// Parses a Go `time.Duration` string above zero: a sequence of decimal numbers with units
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`.
/// A bare number is taken as seconds, as older Go runtime versions read it.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let d = go_duration(s)?;
    if d.is_zero() {
        Err("the duration must be above zero".into())
    } else {
        Ok(d)
    }
}

/// A Go duration, zero included.
fn go_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?} (e.g. 10s, 500ms, 1m30s)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {s:?} (e.g. 10s, 500ms, 1m30s)"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += value * unit_nanos(&rest[..unit_len], s)?;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e18 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Duration::from_nanos(total as u64))
}

fn unit_nanos(unit: &str, whole: &str) -> Result<f64, String> {
    Ok(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        u => return Err(format!("unknown unit {u:?} in duration {whole:?}")),
    })
}
