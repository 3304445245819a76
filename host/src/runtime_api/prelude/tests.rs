use super::*;

#[test]
fn a_prelude_split_across_chunks_is_found_with_the_payload_after_it() {
    let mut s = Splitter::default();
    assert_eq!(s.push(br#"{"statusCode":201}"#).unwrap(), None);
    assert_eq!(s.push(&[0, 0, 0]).unwrap(), None);
    let (prelude, rest) = s.push(&[0, 0, 0, 0, 0, b'h', b'i']).unwrap().unwrap();
    assert_eq!(&prelude[..], br#"{"statusCode":201}"#);
    assert_eq!(&rest[..], b"hi");
}

#[test]
fn a_prelude_without_its_delimiter_is_refused_past_its_limit() {
    let mut s = Splitter::default();
    let big = vec![b' '; MAX_PRELUDE + 1];
    assert!(s.push(&big).unwrap_err().contains("8 NUL bytes"));
}

#[test]
fn lambda_runtimes_prelude_reads_into_a_head() {
    // What lambda_runtime 1.5 writes for a MetadataPrelude with a repeated header.
    let head = parse(
        br#"{"statusCode":202,"headers":{"content-type":"text/event-stream","x-a":["1","2"]},"cookies":["a=1","b=2; Path=/"]}"#,
    )
    .unwrap();
    assert_eq!(head.status, StatusCode::ACCEPTED);
    assert_eq!(head.headers["content-type"], "text/event-stream");
    let xa: Vec<_> = head.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(head.cookies, ["a=1", "b=2; Path=/"]);
}

#[test]
fn multi_value_headers_replace_single_ones() {
    let head =
        parse(br#"{"headers":{"x":"one"},"multiValueHeaders":{"x":["two","three"]}}"#).unwrap();
    assert_eq!(head.status, StatusCode::OK);
    let x: Vec<_> = head.headers.get_all("x").iter().collect();
    assert_eq!(x, ["two", "three"]);
}

#[test]
fn a_malformed_prelude_says_what_is_wrong() {
    for (bad, says) in [
        (&b"not json"[..], "not a JSON object"),
        (br#"{"statusCode":"ok"}"#, "statusCode must be a number"),
        (br#"{"statusCode":42}"#, "statusCode 42"),
        (
            br#"{"headers":{"bad name":"x"}}"#,
            "not a valid header name",
        ),
        (br#"{"headers":{"x":{"a":1}}}"#, "headers.x"),
        (
            br#"{"multiValueHeaders":{"x":"one"}}"#,
            "multiValueHeaders.x",
        ),
        (br#"{"cookies":[1]}"#, "cookie 1"),
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.contains(says), "{err} should say {says}");
    }
}

#[test]
fn the_prelude_content_type_is_recognised_with_parameters() {
    assert!(announced(Some(CONTENT_TYPE)));
    assert!(announced(Some(
        "Application/vnd.awslambda.http-integration-response; charset=utf-8"
    )));
    assert!(!announced(Some("application/json")));
    assert!(!announced(None));
}
