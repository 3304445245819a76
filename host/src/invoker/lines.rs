//! Function output cut into log lines, the same way for bootstraps and WASI guests: at each
//! newline, and every `MAX_LINE` bytes of a line that has none, so that a function that
//! never prints a newline cannot grow the host's memory. Invalid UTF-8 is replaced.

use std::borrow::Cow;
use std::fmt::Write;

/// Longest line of function output logged as one line.
pub const MAX_LINE: usize = 16 * 1024;

/// The part of a line that waits for its end.
#[derive(Debug, Default)]
pub struct Lines {
    line: Vec<u8>,
}

impl Lines {
    /// Adds `bytes`; calls `emit` with every line they complete, without its line ending.
    pub fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&str)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let end = newline.map_or(bytes.len(), |i| i + 1);
            let take = end.min(MAX_LINE - self.line.len());
            self.line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if (newline.is_some() && take == end) || self.line.len() >= MAX_LINE {
                self.emit(&mut emit);
            }
        }
    }

    /// Emits a last line that had no newline.
    pub fn flush(&mut self, mut emit: impl FnMut(&str)) {
        if !self.line.is_empty() {
            self.emit(&mut emit);
        }
    }

    /// Bytes waiting for the end of their line.
    pub fn pending(&self) -> usize {
        self.line.len()
    }

    fn emit(&mut self, emit: &mut impl FnMut(&str)) {
        let text = String::from_utf8_lossy(&self.line);
        emit(text.trim_end_matches(['\n', '\r']));
        self.line.clear();
    }
}

/// `text` as the host's log writes it: every C0 control character but tab written as an
/// escape (`\r`, `\x1b`), so that a function's output can neither move a terminal's
/// cursor nor start what looks like a line of its own in the host's log (a `\r` inside a
/// line returns to its start). tracing-subscriber escapes ESC, BEL, BS, FF, DEL and the C1
/// characters, not a carriage return or the rest of C0. Extensions' Telemetry API records
/// carry the line as it was (JSON escapes it).
pub fn logged(text: &str) -> Cow<'_, str> {
    // A byte below 0x20 is a whole ASCII character in UTF-8, so bytes can be scanned.
    if !text.bytes().any(|b| escaped(b as char)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if escaped(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether [`logged`] writes `c` as an escape: a C0 control character other than tab.
fn escaped(c: char) -> bool {
    c < ' ' && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            l.feed(c, |s| out.push(s.to_owned()));
        }
        let pending = l.pending();
        l.flush(|s| out.push(s.to_owned()));
        (out, pending)
    }

    #[test]
    fn splits_at_newlines_across_chunks() {
        let (out, pending) = lines(&[b"a\r\nb", b"c\n\nd"]);
        assert_eq!(out, ["a", "bc", "", "d"]);
        assert_eq!(pending, 1);
    }

    #[test]
    fn cuts_over_long_lines_and_replaces_invalid_utf8() {
        let long = vec![b'x'; 2 * MAX_LINE + 3];
        let (out, pending) = lines(&[&long, b"\xff\n"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1].len(), MAX_LINE);
        assert_eq!(out[2], "xxx\u{fffd}");
        assert_eq!(pending, 0);
    }

    #[test]
    fn a_logged_line_escapes_control_characters_but_tab() {
        assert!(matches!(logged("plain\ttext, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            logged("ok\r2026-12-07T00:00:00Z  INFO forged"),
            "ok\\r2026-12-07T00:00:00Z  INFO forged"
        );
        assert_eq!(logged("\x1b[2Ka\x00b\x7f"), "\\x1b[2Ka\\x00b\x7f");
        assert_eq!(logged("a\nb"), "a\\nb");
    }
}
