//! `K_CE_OVERRIDES`: the CloudEvent extensions Knative's SinkBinding asks every event a
//! source sends to carry (`{"extensions":{"name":"value",...}}`). Applied to each reply
//! that is a CloudEvent, binary mode (`ce-` headers) or structured
//! (`application/cloudevents+json`), before it goes to the sink or the caller. Replies that
//! are not CloudEvents are left alone.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};
use http_body_util::Full;

/// Validated extension attributes to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeOverrides {
    extensions: Vec<(String, String)>,
}

impl CeOverrides {
    /// Parses the variable's JSON. Names follow the CloudEvents rule (lower-case letters
    /// and digits); values are strings, numbers or booleans (sent as text, as headers are).
    pub fn parse(json: &str) -> Result<CeOverrides, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            extensions: serde_json::Map<String, serde_json::Value>,
        }
        let raw: Raw = serde_json::from_str(json)
            .map_err(|e| format!("expected {{\"extensions\":{{\"name\":\"value\"}}}} ({e})"))?;
        let mut extensions = Vec::new();
        for (name, value) in raw.extensions {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !valid || matches!(name.as_str(), "id" | "source" | "type" | "specversion") {
                return Err(format!("{name:?} is not an extension name (a-z, 0-9)"));
            }
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => return Err(format!("extension {name:?}: {other} is not a string")),
            };
            if HeaderValue::from_str(&value).is_err() {
                return Err(format!("extension {name:?}: the value cannot be a header"));
            }
            extensions.push((name, value));
        }
        Ok(CeOverrides { extensions })
    }

    /// Sets the extensions on `reply` if it is a CloudEvent.
    pub fn apply(&self, reply: &mut http::Response<Full<Bytes>>) {
        if !self.apply_binary(reply.headers_mut()) && is_structured(reply) {
            self.apply_structured(reply);
        }
    }

    /// Sets the extensions as `ce-` headers if `headers` are a binary-mode CloudEvent's
    /// (a streamed reply's head, whose body is still to come); whether they were.
    pub fn apply_binary(&self, headers: &mut http::HeaderMap) -> bool {
        if !headers.contains_key("ce-id") {
            return false;
        }
        for (name, value) in &self.extensions {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(format!("ce-{name}").as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        true
    }

    fn apply_structured(&self, reply: &mut http::Response<Full<Bytes>>) {
        use http_body_util::BodyExt;
        // A `Full` body is ready at once: polling it once takes its bytes.
        let body = std::mem::take(reply.body_mut());
        let bytes = futures_now(body.collect())
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let Ok(serde_json::Value::Object(mut event)) = serde_json::from_slice(&bytes) else {
            *reply.body_mut() = Full::new(bytes);
            return;
        };
        for (name, value) in &self.extensions {
            event.insert(name.clone(), serde_json::Value::String(value.clone()));
        }
        let out = serde_json::to_vec(&event).map(Bytes::from).unwrap_or(bytes);
        reply.headers_mut().remove(header::CONTENT_LENGTH);
        *reply.body_mut() = Full::new(out);
    }
}

fn is_structured(reply: &http::Response<Full<Bytes>>) -> bool {
    reply
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/cloudevents+json"))
}

/// Takes the output of a future that is already complete (a `Full` body's collect).
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(headers: &[(&str, &str)], body: &str) -> http::Response<Full<Bytes>> {
        let mut r = http::Response::new(Full::new(Bytes::from(body.to_owned())));
        for (k, v) in headers {
            r.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    #[test]
    fn extensions_are_validated() {
        let o = CeOverrides::parse(r#"{"extensions":{"team":"a","n":3,"ok":true}}"#).unwrap();
        assert_eq!(o.extensions.len(), 3);
        assert!(CeOverrides::parse(r#"{"extensions":{"Bad-Name":"x"}}"#).is_err());
        assert!(CeOverrides::parse(r#"{"extensions":{"id":"x"}}"#).is_err());
        assert!(CeOverrides::parse(r#"{"extensions":{"a":{"b":1}}}"#).is_err());
        assert!(CeOverrides::parse(r#"{"other":1}"#).is_err());
        assert!(CeOverrides::parse("not json").is_err());
    }

    #[test]
    fn a_streamed_binary_event_head_gets_them_other_heads_do_not() {
        let o = CeOverrides::parse(r#"{"extensions":{"team":"payments"}}"#).unwrap();
        let mut head = http::HeaderMap::new();
        head.insert("ce-id", HeaderValue::from_static("1"));
        assert!(o.apply_binary(&mut head));
        assert_eq!(head["ce-team"], "payments");
        let mut plain = http::HeaderMap::new();
        plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!o.apply_binary(&mut plain));
        assert!(!plain.contains_key("ce-team"));
    }

    #[test]
    fn binary_and_structured_events_get_them_others_do_not() {
        let o = CeOverrides::parse(r#"{"extensions":{"team":"payments"}}"#).unwrap();
        let mut binary = event(&[("ce-id", "1"), ("ce-team", "old")], "{}");
        o.apply(&mut binary);
        assert_eq!(binary.headers()["ce-team"], "payments");

        let mut structured = event(
            &[("content-type", "application/cloudevents+json")],
            r#"{"id":"1","specversion":"1.0","type":"t","source":"s"}"#,
        );
        o.apply(&mut structured);
        let body = futures_now(http_body_util::BodyExt::collect(structured.into_body()))
            .unwrap()
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["team"], "payments");

        let mut plain = event(&[("content-type", "application/json")], "{}");
        o.apply(&mut plain);
        assert!(!plain.headers().contains_key("ce-team"));
    }
}
