use super::*;

const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn read(pairs: &[(&str, &str)]) -> Result<Context, BadRequest> {
    Context::read(&headers(pairs), &ContextOptions::default())
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn client_context(json: &str) -> Result<String, BadRequest> {
    let ctx = read(&[("x-amz-client-context", &b64(json))])?;
    Ok(ctx.client_context_json()?.unwrap())
}

fn refused(result: Result<impl std::fmt::Debug, BadRequest>, naming: &str) -> String {
    let err = result.unwrap_err().0;
    assert!(err.contains(naming), "{err}");
    err
}

#[test]
fn valid_context_headers_are_accepted_and_written_anew() {
    let full = r#"{"client":{"installation_id":"i","app_title":"t","app_version_name":"n","app_version_code":"c","app_package_name":"p"},"custom":{"k":"v"},"env":{"platform":"Android","locale":"en"}}"#;
    let text = client_context(full).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back,
        serde_json::from_str::<serde_json::Value>(full).unwrap()
    );
    assert_eq!(
        client_context(r#"{"custom":{"k":"v"}}"#).unwrap(),
        r#"{"custom":{"k":"v"}}"#
    );
    assert_eq!(client_context("{}").unwrap(), "{}");
    assert_eq!(
        client_context(r#"{"custom":null}"#).unwrap(),
        "{}",
        "null is absent"
    );

    let identity = r#" {"cognitoIdentityPoolId":"us-east-1:p","cognitoIdentityId":"us-east-1:i"} "#;
    let ctx = read(&[("x-amz-cognito-identity", identity)]).unwrap();
    assert_eq!(
        ctx.cognito_identity.as_deref(),
        Some(r#"{"cognitoIdentityId":"us-east-1:i","cognitoIdentityPoolId":"us-east-1:p"}"#)
    );

    for trace in [
        ROOT.to_owned(),
        format!("{ROOT};Sampled=1"),
        format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=?"),
        format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=0;Lineage=a87bd80c:1|68fd508a:5"),
        format!("Self=1-67891234-12456789abcdef012345678;{ROOT}"),
    ] {
        let ctx = read(&[("x-amzn-trace-id", &trace)]).unwrap();
        assert_eq!(ctx.trace_id.as_deref(), Some(trace.as_str()));
    }
    let ctx = read(&[("x-amzn-trace-id", &format!(" {ROOT}; Sampled=1 "))]).unwrap();
    assert_eq!(
        ctx.trace_id.as_deref(),
        Some(format!("{ROOT};Sampled=1").as_str()),
        "fields are trimmed"
    );
}

#[test]
fn client_contexts_in_other_shapes_are_refused() {
    for bad in [
        r#"{"custom":{"a":1}}"#,
        r#"{"custom":{"a":{"b":"c"}}}"#,
        r#"{"custom":{"a":null}}"#,
        r#"{"custom":["a"]}"#,
        r#"{"env":{"a":true}}"#,
        r#"{"client":{"app_title":"x"}}"#,
        r#"{"client":{"installation_id":"i","app_title":"t","app_version_name":"n","app_version_code":1,"app_package_name":"p"}}"#,
        r#"{"client":{"installation_id":"i","app_title":"t","app_version_name":"n","app_version_code":"c","app_package_name":"p","extra":"x"}}"#,
        r#"{"client":"x"}"#,
        r#"{"client":["i","t","n","c","p"]}"#,
        r#"{"other":{}}"#,
        r#"{"w3c":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#,
        r#"{"w3c":["traceparent"]}"#,
        r#"{"w3c":{"traceparent":1}}"#,
        r#"{"w3c":{"baggage":{"k":"v"}}}"#,
        r#"{"w3c":{"traceparent":"t","sampled":"1"}}"#,
    ] {
        refused(client_context(bad), "X-Amz-Client-Context");
    }
    for bad in ["[1,2]", "\"text\"", "42", "null", "not json"] {
        let err = refused(client_context(bad), "X-Amz-Client-Context");
        assert!(err.contains("base64-encoded JSON object"), "{err}");
    }
    refused(
        read(&[("x-amz-client-context", "not base64!")]),
        "X-Amz-Client-Context",
    );
    let huge = b64(&format!(r#"{{"custom":{{"k":"{}"}}}}"#, "x".repeat(3000)));
    let err = refused(
        read(&[("x-amz-client-context", &huge)]),
        "X-Amz-Client-Context",
    );
    assert!(err.contains("3583"), "{err}");
}

#[test]
fn cognito_identities_without_both_ids_as_strings_are_refused() {
    for bad in [
        "{}",
        r#"{"cognitoIdentityId":"i"}"#,
        r#"{"cognitoIdentityPoolId":"p"}"#,
        r#"{"cognitoIdentityId":1,"cognitoIdentityPoolId":"p"}"#,
        r#"{"cognitoIdentityId":"i","cognitoIdentityPoolId":null}"#,
        r#"{"cognitoIdentityId":"i","cognitoIdentityPoolId":"p","x":"y"}"#,
        r#"{"identityId":"i","identityPoolId":"p"}"#,
        r#"["i","p"]"#,
        "not json",
    ] {
        refused(
            read(&[("x-amz-cognito-identity", bad)]),
            "X-Amz-Cognito-Identity",
        );
    }
    let long = format!(
        r#"{{"cognitoIdentityId":"{}","cognitoIdentityPoolId":"p"}}"#,
        "i".repeat(2000)
    );
    refused(
        read(&[("x-amz-cognito-identity", &long)]),
        "X-Amz-Cognito-Identity",
    );
}

#[test]
fn trace_ids_not_in_x_rays_format_are_refused() {
    let huge = format!("{ROOT};Pad={}", "a".repeat(150 * 1024));
    let err = refused(read(&[("x-amzn-trace-id", &huge)]), "X-Amzn-Trace-Id");
    assert!(err.contains(&MAX_TRACE_ID.to_string()), "{err}");
    for bad in [
        "Root=1-a-b",
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e98-bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3fe1be46a99427279",
        "Root=1-5759e988-bd862e3fe1be46a99427279z",
        "Root=1-5759e988-bd862e3fe1be46a994272793-00",
        "Parent=53995c3f42cd8ad8;Sampled=1",
        "Sampled=1",
        "hello",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=yes",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Sampled=0",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3fe1be46a994272793;noequals",
        "Root=1-5759e988-bd862e3fe1be46a994272793;k=a=b",
        "Root=1-5759e988-bd862e3fe1be46a994272793;k y=v",
        "Root=1-5759e988-bd862e3fe1be46a994272793;k=v w",
    ] {
        refused(read(&[("x-amzn-trace-id", bad)]), "X-Amzn-Trace-Id");
    }
}

#[test]
fn context_headers_that_are_not_ascii_are_refused() {
    for name in [
        "x-amz-client-context",
        "x-amz-cognito-identity",
        "x-amzn-trace-id",
    ] {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let err = Context::read(&h, &ContextOptions::default()).unwrap_err().0;
        assert!(err.contains("visible ASCII"), "{name}: {err}");
    }
}

#[test]
fn client_context_reaches_runtimes_as_visible_ascii() {
    let text = client_context(r#"{"custom":{"k":"日本 ✓","del":"a\u007fb","nl":"a\nb"}}"#).unwrap();
    assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["custom"]["k"], "日本 ✓");
    assert_eq!(v["custom"]["del"], "a\u{7f}b");
    assert_eq!(v["custom"]["nl"], "a\nb");
}

#[test]
fn a_grown_client_context_has_a_cap() {
    let mut cc = ClientContext::default();
    let custom = cc.custom.get_or_insert_default();
    custom.insert("k".into(), "x".repeat(MAX_CLIENT_CONTEXT_JSON));
    let err = cc.to_header().unwrap_err().0;
    assert!(err.contains(&MAX_CLIENT_CONTEXT_JSON.to_string()), "{err}");
}

#[test]
fn without_accept_context_headers_the_callers_context_is_dropped() {
    let options = ContextOptions {
        accept_context_headers: false,
        ..ContextOptions::default()
    };
    let h = headers(&[
        ("x-amz-client-context", "definitely not base64"),
        ("x-amz-cognito-identity", "{}"),
        ("x-amzn-trace-id", ROOT),
        ("content-type", "text/csv"),
    ]);
    let ctx = Context::read(&h, &options).unwrap();
    assert_eq!(
        ctx,
        Context {
            content_type: Some("text/csv".into()),
            client_context: None,
            cognito_identity: None,
            trace_id: Some(ROOT.into()),
        }
    );
}

#[test]
fn a_trace_id_is_made_only_when_tracing_is_active() {
    let ctx = read(&[]).unwrap();
    assert_eq!(ctx.trace_id, None, "PassThrough invents none");
    let active = ContextOptions {
        active_tracing: true,
        ..ContextOptions::default()
    };
    let t = Context::read(&HeaderMap::new(), &active)
        .unwrap()
        .trace_id
        .unwrap();
    assert!(t.starts_with("Root=1-") && t.ends_with(";Sampled=0"), "{t}");
    assert_eq!(t.len(), "Root=1-".len() + 8 + 1 + 24 + ";Sampled=0".len());
    assert_eq!(trace::check(&t).unwrap(), t, "a made one is valid");
    let sent = Context::read(&headers(&[("x-amzn-trace-id", ROOT)]), &active).unwrap();
    assert_eq!(sent.trace_id.as_deref(), Some(ROOT), "the caller's is kept");
}

#[test]
fn content_type_is_taken_and_capped() {
    let ctx = read(&[("content-type", " text/csv ")]).unwrap();
    assert_eq!(ctx.content_type.as_deref(), Some("text/csv"));
    let long = format!("text/plain; x={}", "a".repeat(MAX_CONTENT_TYPE));
    let ctx = read(&[("content-type", &long)]).unwrap();
    refused(ctx.into_event(Bytes::new()), "content type");
}

#[test]
fn a_w3c_trace_context_is_accepted_in_the_shape_awslambdaric_reads() {
    let full = r#"{"custom":{"k":"v"},"w3c":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"rojo=00f067aa0ba902b7","baggage":"userId=alice"}}"#;
    assert_eq!(client_context(full).unwrap(), full);
    assert_eq!(
        client_context(r#"{"w3c":{"traceparent":"t"}}"#).unwrap(),
        r#"{"w3c":{"traceparent":"t"}}"#
    );
    assert_eq!(client_context(r#"{"w3c":{}}"#).unwrap(), r#"{"w3c":{}}"#);
    assert_eq!(client_context(r#"{"w3c":null}"#).unwrap(), "{}");
    let err = refused(client_context(r#"{"w3c":"text"}"#), "X-Amz-Client-Context");
    assert!(err.contains("`w3c` must be a JSON object"), "{err}");
}
