use super::*;

fn list(s: &str) -> AllowList {
    AllowList::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn empty_denies_everything() {
    for value in ["", " ", ",,"] {
        let l = list(value);
        assert!(l.is_empty());
        assert!(!l.allows("http", "127.0.0.1", Some(80)));
        assert!(!l.allows("https", "example.com", None));
    }
}

#[test]
fn exact_origin_only() {
    let l = list("http://127.0.0.1:8080");
    assert!(l.allows("http", "127.0.0.1", Some(8080)));
    assert!(!l.allows("http", "127.0.0.1", Some(8081)));
    assert!(!l.allows("https", "127.0.0.1", Some(8080)));
    assert!(!l.allows("http", "127.0.0.2", Some(8080)));
    assert!(!l.allows("http", "localhost", Some(8080)));
}

#[test]
fn default_ports_and_case() {
    let l = list("https://API.Example.com");
    assert!(l.allows("HTTPS", "api.example.COM", None));
    assert!(l.allows("https", "api.example.com", Some(443)));
    assert!(l.allows("https", "api.example.com.", Some(443)));
    assert!(!l.allows("https", "api.example.com", Some(8443)));
    assert!(!l.allows("http", "api.example.com", None));
}

#[test]
fn wildcards() {
    let l = list("http://*:8080, https://*.example.com:*, *://10.0.0.1:*");
    assert!(l.allows("http", "anything", Some(8080)));
    assert!(!l.allows("http", "anything", Some(80)));
    assert!(l.allows("https", "a.example.com", Some(9000)));
    assert!(l.allows("https", "a.b.example.com", None));
    assert!(!l.allows("https", "example.com", None));
    assert!(!l.allows("https", "badexample.com", None));
    assert!(l.allows("http", "10.0.0.1", Some(1)));
    assert!(l.allows("https", "10.0.0.1", None));
    assert!(!l.allows("ftp", "10.0.0.1", Some(21)));
}

#[test]
fn ipv6() {
    let l = list("http://[::1]:8080");
    assert!(l.allows("http", "[::1]", Some(8080)));
    assert!(l.allows("http", "::1", Some(8080)));
    assert!(!l.allows("http", "[::2]", Some(8080)));
    assert_eq!(l.to_string(), "http://[::1]:8080");
}

#[test]
fn malformed_entries_are_named() {
    for (value, entry) in [
        ("example.com", "example.com"),
        ("http://ok:1, ftp://x:21", "ftp://x:21"),
        ("http://x:0", "http://x:0"),
        ("http://x:70000", "http://x:70000"),
        ("http://x:port", "http://x:port"),
        ("http://x/path", "http://x/path"),
        ("http://user@x:80", "http://user@x:80"),
        ("http://:80", "http://:80"),
        ("http://a..b:80", "http://a..b:80"),
        ("http://a b:80", "http://a b:80"),
        ("*://x", "*://x"),
        ("http://[::1:80", "http://[::1:80"),
    ] {
        let err = AllowList::parse(value).expect_err(value);
        assert_eq!(err.entry, entry, "{value}");
        assert!(
            err.to_string().contains("WASM_ALLOWED_OUTBOUND_HOSTS"),
            "{err}"
        );
        assert!(err.to_string().contains(entry), "{err}");
    }
}

#[test]
fn display_round_trips() {
    let value = "http://127.0.0.1:8080,https://*.example.com:443,*://*:*";
    assert_eq!(list(value).to_string(), value);
    assert_eq!(list(&list(value).to_string()), list(value));
}
