//! X-Ray trace headers: checking the caller's and making a fresh one. The format is X-Ray's
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>):
//! `;`-separated `key=value` fields, one of them `Root=1-{8 hex}-{24 hex}`, with the optional
//! `Parent={16 hex}`, `Sampled=0|1|?` and further fields X-Ray or a load balancer adds
//! (`Lineage=...`, `Self=...`).

use super::BadRequest;

/// The longest trace header accepted. Real ones are under 150 bytes (root, parent, sampled,
/// lineage); runtime clients put the header in `_X_AMZN_TRACE_ID` for every invocation, and a
/// bash bootstrap's curl stops at a 100 KB header.
pub const MAX_TRACE_ID: usize = 256;

/// The caller's trace header if it is X-Ray's format, fields trimmed and joined by `;`.
pub(super) fn check(raw: &str) -> Result<String, BadRequest> {
    let bad = |why: String| {
        BadRequest(format!(
            "X-Amzn-Trace-Id is not an X-Ray trace header: {why}"
        ))
    };
    if raw.len() > MAX_TRACE_ID {
        return Err(BadRequest(format!(
            "X-Amzn-Trace-Id is {} bytes long; at most {MAX_TRACE_ID} are accepted",
            raw.len()
        )));
    }
    let mut fields = Vec::new();
    let (mut root, mut parent, mut sampled) = (false, false, false);
    for field in raw.split(';').map(str::trim).filter(|f| !f.is_empty()) {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| bad(format!("{field:?} is not key=value")))?;
        let once = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(bad(format!("{key} appears twice")))
            } else {
                Ok(())
            }
        };
        match key {
            "Root" => {
                once(&mut root)?;
                if !is_root(value) {
                    return Err(bad(format!("Root={value:?} is not 1-{{8 hex}}-{{24 hex}}")));
                }
            }
            "Parent" => {
                once(&mut parent)?;
                if !is_hex(value, 16) {
                    return Err(bad(format!("Parent={value:?} is not 16 hex digits")));
                }
            }
            "Sampled" => {
                once(&mut sampled)?;
                if !matches!(value, "0" | "1" | "?") {
                    return Err(bad(format!("Sampled={value:?} is not 0, 1 or ?")));
                }
            }
            _ => {
                let key_ok = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                // Visible ASCII (the header already is), no separators of fields.
                let value_ok = value.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
                if !key_ok || !value_ok {
                    return Err(bad(format!("{field:?} is not a trace header field")));
                }
            }
        }
        fields.push(field);
    }
    if !root {
        return Err(bad("the Root field is missing".into()));
    }
    Ok(fields.join(";"))
}

fn is_root(value: &str) -> bool {
    let mut parts = value.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(time), Some(id), None) if is_hex(time, 8) && is_hex(id, 24)
    )
}

fn is_hex(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh X-Ray trace header: `Root=1-{epoch seconds, hex}-{96 random bits, hex};Sampled=0`.
/// Not sampled: nothing here records segments.
pub fn new_trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{secs:08x}-{};Sampled=0", &random[..24])
}
