//! CloudEvents (`RESPONSE_FORMAT=CLOUDEVENTS`) with the Go runtime's semantics: an event
//! (structured or binary mode) becomes its data as the payload and its attributes as the
//! client context's `custom` map; the function's reply becomes a CloudEvents 1.0 event, sent
//! back in binary mode. Pure: no I/O, no configuration reading. The event model, its JSON
//! format and its validation are the `cloudevents-sdk` crate's; the HTTP binding (the crate's
//! needs a feature we do not build) is its message traits over `http` headers, here.
//!
//! Go runtime behaviour kept, from `pkg/converter/cloudevents/cloudevents.go` and its test:
//! the attributes reach the function as `Lambda-Runtime-Client-Context:
//! {"custom": {"<attribute>": "<value as text>", ...}}` under their own names (`id`, `type`,
//! `source`, `specversion`, extensions...); the defaults of the reply's type, source and
//! subject; `CE_FUNCTION_RESPONSE_MODE=event`; no event when the reply is empty or the type
//! is set empty. Changed: see each function.

use bytes::Bytes;
use cloudevents::event::{AttributesReader, AttributesWriter, Data, SpecVersion};
use cloudevents::message::{
    BinaryDeserializer, BinarySerializer, Error as MessageError, MessageAttributeValue,
};
use cloudevents::{Event as CloudEvent, EventBuilder, EventBuilderV10};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::BadRequest;
use super::ascii_json;
use crate::dispatch::{Event, Outcome};
use crate::reply::{self, Reply};

/// The reply's type when `CE_OVERRIDES_TYPE` (`CE_TYPE`) is unset (the Go runtime's).
pub const DEFAULT_TYPE: &str = "ce.klr.triggermesh.io";
/// The reply's source when `CE_OVERRIDES_SOURCE` (`CE_SOURCE`) is unset.
pub const DEFAULT_SOURCE: &str = "knative-lambda-runtime";
/// The reply's subject when `CE_OVERRIDES_SUBJECT` (`CE_SUBJECT`) is unset.
pub const DEFAULT_SUBJECT: &str = "klr-response";

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// The incoming event's type and source, for metrics labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeAttrs {
    pub event_type: String,
    pub source: String,
}

/// The event of a request. A structured event (`Content-Type: application/cloudevents+json`,
/// any parameters) gives its `data` (JSON as JSON text, a string as is, `data_base64`
/// decoded) with `datacontenttype` as the content type; a binary event (`ce-specversion`
/// header) gives the body and `Content-Type` as they are. Other requests pass through as in
/// the passthrough wrapper, with `None` attributes.
///
/// Unlike the Go runtime: binary mode is recognised by its headers whatever the content
/// type (Go took only `application/json`, so the attributes of text or binary data were
/// lost); structured data that is not JSON is given as is (Go gave every `data` as JSON, a
/// string quoted) and `data_base64` decoded; an invalid event (bad specversion, missing or empty
/// `id`/`type`/`source`, bad `time`, malformed JSON, `ce-*` headers without
/// `ce-specversion`) is a 400 rather than a pass-through or a 500; an event without data
/// gives an empty payload (Go gave `null`); header values are percent-decoded as the HTTP
/// binding requires; the context keeps any `X-Amz-Client-Context` fields, the event's
/// attributes winning in `custom`. Go also set a `Lambda-Runtime-Cloudevents-Context`
/// header with the same map, which [`Event`] has no place for.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<(Event, Option<CeAttrs>), BadRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some(STRUCTURED) => return structured(headers, &body),
        Some(BATCH) => {
            return Err(BadRequest(
                "batched CloudEvents are not supported; send one event per request".into(),
            ));
        }
        _ => {}
    }
    if headers.contains_key("ce-specversion") {
        return binary(headers, body);
    }
    if headers.keys().any(|k| k.as_str().starts_with("ce-")) {
        return Err(BadRequest(
            "invalid binary-mode CloudEvent: the ce-specversion header is missing".into(),
        ));
    }
    Ok((super::decode(headers, body)?, None))
}

fn structured(headers: &HeaderMap, body: &[u8]) -> Result<(Event, Option<CeAttrs>), BadRequest> {
    let bad = |why: String| BadRequest(format!("invalid structured CloudEvent: {why}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Value::Object(map) = &value else {
        return Err(bad("not a JSON object".into()));
    };
    // Attributes as the sender wrote them (Go passed every member but `data`); null is unset.
    let attributes: Vec<(String, String)> = map
        .iter()
        .filter(|(k, v)| *k != "data" && *k != "data_base64" && !v.is_null())
        .map(|(k, v)| (k.clone(), text_of(v)))
        .collect();
    let ce: CloudEvent = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    check(&ce).map_err(bad)?;

    let declared = ce.datacontenttype().map(str::to_owned);
    let (payload, default_type) = match ce.data() {
        Some(Data::Json(v)) => (
            serde_json::to_vec(v).unwrap_or_default(),
            "application/json",
        ),
        Some(Data::String(s)) => (s.clone().into_bytes(), "text/plain"),
        Some(Data::Binary(b)) => (b.clone(), "application/octet-stream"),
        None => (Vec::new(), "application/json"),
    };
    let mut event = super::decode(headers, Bytes::new())?;
    event.body = Bytes::from(payload);
    event.content_type = declared.or_else(|| ce.data().map(|_| default_type.to_owned()));
    event.client_context = Some(client_context(event.client_context.as_deref(), attributes));
    Ok((event, Some(labels(&ce))))
}

fn binary(headers: &HeaderMap, body: Bytes) -> Result<(Event, Option<CeAttrs>), BadRequest> {
    let bad = |why: String| BadRequest(format!("invalid binary-mode CloudEvent: {why}"));
    let mut attributes = ce_headers(headers).map_err(bad)?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| bad("Content-Type is not text".into()))?,
        ),
        None => None,
    };
    // The data is the body, untouched; the crate checks the attributes only.
    let ce = BinaryAttributes {
        attributes: &attributes,
        content_type,
    }
    .into_event()
    .map_err(|e| bad(e.to_string()))?;
    check(&ce).map_err(bad)?;
    if let Some(ct) = content_type {
        attributes.push(("datacontenttype".into(), ct.to_owned()));
    }
    let mut event = super::decode(headers, body)?;
    event.client_context = Some(client_context(event.client_context.as_deref(), attributes));
    Ok((event, Some(labels(&ce))))
}

/// `ce-*` headers as (attribute, value): the name without its prefix, values percent-decoded
/// and, when repeated, joined with commas (as Go joined them).
fn ce_headers(headers: &HeaderMap) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for name in headers.keys() {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let mut values = Vec::new();
        for value in headers.get_all(name) {
            let text = std::str::from_utf8(value.as_bytes())
                .map_err(|_| format!("header {name} is not UTF-8"))?;
            values.push(percent_decode(text.trim()));
        }
        out.push((attribute.to_owned(), values.join(",")));
    }
    Ok(out)
}

/// Binary-mode attributes, fed to the crate's event builder so that it validates them.
struct BinaryAttributes<'a> {
    attributes: &'a [(String, String)],
    content_type: Option<&'a str>,
}

impl BinaryDeserializer for BinaryAttributes<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        self,
        mut visitor: V,
    ) -> cloudevents::message::Result<R> {
        let find = |wanted: &str| {
            self.attributes
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.as_str())
        };
        let spec = SpecVersion::try_from(find("specversion").unwrap_or_default())?;
        let known = spec.attribute_names();
        visitor = visitor.set_spec_version(spec.clone())?;
        for (name, value) in self.attributes {
            let value = MessageAttributeValue::String(value.clone());
            visitor = match name.as_str() {
                "specversion" | "datacontenttype" => continue,
                n if known.contains(&n) => visitor.set_attribute(n, value)?,
                n => visitor.set_extension(n, value)?,
            };
        }
        if let Some(ct) = self.content_type {
            let value = MessageAttributeValue::String(ct.to_owned());
            visitor = visitor.set_attribute("datacontenttype", value)?;
        }
        visitor.end()
    }
}

/// What the crate does not check: the required attributes are non-empty.
fn check(ce: &CloudEvent) -> Result<(), String> {
    for (name, value) in [
        ("id", ce.id()),
        ("type", ce.ty()),
        ("source", ce.source().as_str()),
    ] {
        if value.is_empty() {
            return Err(format!("attribute `{name}` is empty"));
        }
    }
    Ok(())
}

fn labels(ce: &CloudEvent) -> CeAttrs {
    CeAttrs {
        event_type: ce.ty().to_owned(),
        source: ce.source().to_string(),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The client context: the caller's (`X-Amz-Client-Context`, already a JSON object) with
/// the attributes added to `custom`. Non-ASCII is escaped: it travels in a header, and
/// runtime clients (the Rust one among them) reject headers that are not ASCII.
fn client_context(existing: Option<&str>, attributes: Vec<(String, String)>) -> String {
    let mut root: Map<String, Value> = existing
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let custom = root
        .entry("custom")
        .or_insert_with(|| Value::Object(Map::new()));
    if !custom.is_object() {
        *custom = Value::Object(Map::new());
    }
    if let Value::Object(custom) = custom {
        for (name, value) in attributes {
            custom.insert(name, Value::String(value));
        }
    }
    ascii_json(&Value::Object(root))
}

/// What the function's reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// The event's data; the host makes the event (the Go runtime's default).
    #[default]
    Data,
    /// A whole event in structured JSON; the host fills in what is missing.
    Event,
}

/// How replies become events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None` when the type is set empty: then, in data mode, no event (the Go runtime's rule).
    pub event_type: Option<String>,
    pub source: String,
    /// `None` when the subject is set empty.
    pub subject: Option<String>,
    pub mode: ResponseMode,
}

/// The settings of `CE_OVERRIDES_TYPE` (or `CE_TYPE`), `CE_OVERRIDES_SOURCE` (`CE_SOURCE`),
/// `CE_OVERRIDES_SUBJECT` (`CE_SUBJECT`) and `CE_FUNCTION_RESPONSE_MODE`, each `None` when
/// unset; the defaults are the Go runtime's. Unlike Go, an empty source (an event needs
/// one) and a mode other than `data` or `event` (Go took any other word for `data`) are
/// refused.
pub fn settings(
    type_override: Option<String>,
    source_override: Option<String>,
    subject_override: Option<String>,
    response_mode: Option<String>,
) -> Result<Settings, String> {
    let set = |value: Option<String>, default: &str| match value {
        None => Some(default.to_owned()),
        Some(v) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
    };
    let source = set(source_override, DEFAULT_SOURCE).ok_or(
        "CE_OVERRIDES_SOURCE (CE_SOURCE) must not be empty: every CloudEvent needs a source",
    )?;
    let mode = match response_mode.as_deref().map(str::trim) {
        None | Some("") => ResponseMode::Data,
        Some(m) if m.eq_ignore_ascii_case("data") => ResponseMode::Data,
        Some(m) if m.eq_ignore_ascii_case("event") => ResponseMode::Event,
        Some(other) => {
            return Err(format!(
                "CE_FUNCTION_RESPONSE_MODE must be `data` or `event`, not {other:?}"
            ));
        }
    };
    Ok(Settings {
        event_type: set(type_override, DEFAULT_TYPE),
        source,
        subject: set(subject_override, DEFAULT_SUBJECT),
        mode,
    })
}

/// The reply of an outcome. A response becomes a CloudEvents 1.0 event sent in binary mode:
/// 200 with every attribute in a `ce-*` header (percent-encoded as the HTTP binding
/// requires), the data's type in `Content-Type` and the data as the body, so that the same
/// reply, posted as is, is a valid event for a sink. The Go runtime replied in structured
/// mode; binary carries the same event, and a caller that does not know CloudEvents still
/// gets the function's data as the body.
///
/// Data mode: id = the invocation's request id (Go made a fresh UUID; this one ties the
/// event to the function's logs), type, source and subject from `settings` (Go forgot the
/// subject), time = now. An object or array is JSON data (`application/json`, as the
/// function wrote it); a JSON string is its text and anything else UTF-8 is trimmed text
/// (`text/plain`), as Go did; other bytes keep the function's content type
/// (`application/octet-stream` by default), where Go sent them as text.
///
/// Event mode: the reply is a structured event; `id`, `type`, `source`, `specversion` and
/// `time` are filled in when absent (as Go did), and an event still invalid is a 502 (Go
/// answered 200 with an error text).
///
/// No event (an empty reply, or data mode with the type set empty) is a 204 with no body:
/// nothing to forward. A function error or failed invocation gets the passthrough reply
/// (500 with the error's JSON, 504, 502), not an event.
pub fn encode(request_id: &str, outcome: Outcome, settings: &Settings) -> Reply {
    let (body, content_type) = match outcome {
        Outcome::Response { body, content_type } => (body, content_type),
        other => return super::encode(request_id, other),
    };
    if body.trim_ascii().is_empty() {
        return no_event();
    }
    let event = match settings.mode {
        ResponseMode::Data => match &settings.event_type {
            Some(ty) => data_event(request_id, &body, content_type.as_deref(), ty, settings),
            None => return no_event(),
        },
        ResponseMode::Event => whole_event(request_id, &body, settings),
    };
    let reply = event.and_then(|e| {
        e.deserialize_binary(BinaryReply::default())
            .map_err(|e| format!("the event cannot be sent: {e}"))
    });
    reply.unwrap_or_else(|message| {
        reply::error(StatusCode::BAD_GATEWAY, "InvalidCloudEvent", &message)
    })
}

fn no_event() -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
}

fn data_event(
    request_id: &str,
    body: &[u8],
    declared: Option<&str>,
    event_type: &str,
    settings: &Settings,
) -> Result<CloudEvent, String> {
    let trimmed = body.trim_ascii();
    let (content_type, data) = match serde_json::from_slice::<Value>(trimmed) {
        Ok(Value::Object(_) | Value::Array(_)) => {
            ("application/json", Data::Binary(trimmed.to_vec()))
        }
        Ok(Value::String(s)) => ("text/plain", Data::String(s)),
        _ => match std::str::from_utf8(trimmed) {
            Ok(text) => ("text/plain", Data::String(text.to_owned())),
            // curl's default for `-d` says nothing about the bytes.
            Err(_) => (
                declared
                    .filter(|c| !c.starts_with("application/x-www-form-urlencoded"))
                    .unwrap_or("application/octet-stream"),
                Data::Binary(body.to_vec()),
            ),
        },
    };
    // The crate's default event carries the current time.
    let mut builder = EventBuilderV10::default()
        .id(request_id)
        .ty(event_type)
        .source(settings.source.as_str())
        .data(content_type, data);
    if let Some(subject) = &settings.subject {
        builder = builder.subject(subject.as_str());
    }
    builder
        .build()
        .map_err(|e| format!("the event cannot be built: {e}"))
}

fn whole_event(request_id: &str, body: &[u8], settings: &Settings) -> Result<CloudEvent, String> {
    let invalid = |why: String| format!("the function's reply is not a valid CloudEvent: {why}");
    let mut map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(invalid("not a JSON object".into())),
        Err(e) => return Err(invalid(format!("not JSON ({e})"))),
    };
    let mut fill = |name: &str, value: &str| {
        if map.get(name).is_none_or(Value::is_null) {
            map.insert(name.into(), Value::String(value.into()));
        }
    };
    fill("id", request_id);
    fill("source", &settings.source);
    fill("specversion", "1.0");
    if let Some(ty) = &settings.event_type {
        fill("type", ty);
    }
    let mut ce: CloudEvent =
        serde_json::from_value(Value::Object(map)).map_err(|e| invalid(e.to_string()))?;
    check(&ce).map_err(invalid)?;
    if ce.time().is_none() {
        ce.set_time(CloudEvent::default().time().copied());
    }
    if ce.datacontenttype().is_none() && matches!(ce.data(), Some(Data::Json(_))) {
        ce.set_datacontenttype(Some("application/json"));
    }
    Ok(ce)
}

/// A binary-mode HTTP message under construction, as the HTTP binding lays it out.
#[derive(Default)]
struct BinaryReply {
    headers: HeaderMap,
}

impl BinaryReply {
    fn set(
        mut self,
        name: &str,
        value: &MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        let other = |e: Box<dyn std::error::Error + Send + Sync>| MessageError::Other { source: e };
        let (name, value) = if name == "datacontenttype" {
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(&value.to_string()),
            )
        } else {
            let name = HeaderName::from_bytes(format!("ce-{name}").as_bytes())
                .map_err(|e| other(Box::new(e)))?;
            (
                name,
                HeaderValue::from_str(&percent_encode(&value.to_string())),
            )
        };
        self.headers
            .insert(name, value.map_err(|e| other(Box::new(e)))?);
        Ok(self)
    }

    fn finish(self, body: Vec<u8>) -> Reply {
        let mut reply = http::Response::new(Full::new(Bytes::from(body)));
        *reply.headers_mut() = self.headers;
        reply
    }
}

impl BinarySerializer<Reply> for BinaryReply {
    fn set_spec_version(self, spec_version: SpecVersion) -> cloudevents::message::Result<Self> {
        self.set(
            "specversion",
            &MessageAttributeValue::String(spec_version.to_string()),
        )
    }

    fn set_attribute(
        self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        self.set(name, &value)
    }

    fn set_extension(
        self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        self.set(name, &value)
    }

    fn end_with_data(self, bytes: Vec<u8>) -> cloudevents::message::Result<Reply> {
        Ok(self.finish(bytes))
    }

    fn end(self) -> cloudevents::message::Result<Reply> {
        Ok(self.finish(Vec::new()))
    }
}

/// The HTTP binding's percent-encoding of header values: space, `"`, `%` and everything
/// outside printable ASCII.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if matches!(b, b' ' | b'"' | b'%') || !(0x21..=0x7e).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Its inverse; a value that does not decode to UTF-8 is kept as sent.
fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::InvocationError;
    use crate::lambda_error::Diagnostic;
    use base64::Engine;
    use serde_json::json;

    fn fixture(name: &str) -> String {
        let path = format!("{}/src/wrapper/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    /// Headers and body of a `.http` fixture (request line, headers, blank line, body).
    fn http_fixture(name: &str) -> (HeaderMap, Bytes) {
        let text = fixture(name);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut headers = HeaderMap::new();
        for line in head.lines().skip(1) {
            let (k, v) = line.split_once(':').unwrap();
            headers.append(
                HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                v.trim().parse().unwrap(),
            );
        }
        (headers, Bytes::from(body.to_owned()))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn structured_headers() -> HeaderMap {
        headers(&[("content-type", "application/cloudevents+json")])
    }

    fn custom(event: &Event) -> Value {
        let cc: Value = serde_json::from_str(event.client_context.as_deref().unwrap()).unwrap();
        cc["custom"].clone()
    }

    fn body_of(reply: &Reply) -> Bytes {
        use http_body_util::BodyExt;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut collect = std::pin::pin!(reply.body().clone().collect());
        match collect.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(body) => body.unwrap().to_bytes(),
            std::task::Poll::Pending => panic!("a Full body is always ready"),
        }
    }

    fn response(body: &'static [u8]) -> Outcome {
        Outcome::Response {
            body: Bytes::from_static(body),
            content_type: None,
        }
    }

    fn defaults() -> Settings {
        settings(None, None, None, None).unwrap()
    }

    /// A reply read back as the sink or a caller would read it: a binary-mode event.
    fn read_back(reply: &Reply) -> (Event, CeAttrs) {
        let (event, attrs) = decode(reply.headers(), body_of(reply)).unwrap();
        (event, attrs.expect("the reply is a CloudEvent"))
    }

    #[test]
    fn structured_spec_example_gives_its_data_and_attributes() {
        let (event, attrs) = decode(
            &structured_headers(),
            fixture("cloudevents-structured-xml.json").into(),
        )
        .unwrap();
        assert_eq!(&event.body[..], br#"<much wow="xml"/>"#);
        assert_eq!(event.content_type.as_deref(), Some("text/xml"));
        assert_eq!(
            custom(&event),
            json!({
                "specversion": "1.0",
                "type": "com.example.someevent",
                "source": "/mycontext",
                "id": "A234-1234-1234",
                "time": "2018-04-05T17:31:00Z",
                "comexampleextension1": "value",
                "comexampleothervalue": "5",
                "datacontenttype": "text/xml"
            }),
            "every attribute, as text, under its own name (the Go runtime's map)"
        );
        assert_eq!(
            attrs,
            Some(CeAttrs {
                event_type: "com.example.someevent".into(),
                source: "/mycontext".into()
            })
        );
        assert!(event.trace_id.is_some());
    }

    #[test]
    fn structured_json_data_is_the_payload() {
        let (event, _) = decode(
            &structured_headers(),
            fixture("cloudevents-structured-json.json").into(),
        )
        .unwrap();
        let data: Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(
            data,
            json!({"appinfoA": "abc", "appinfoB": 123, "appinfoC": true})
        );
        assert_eq!(event.content_type.as_deref(), Some("application/json"));
        assert!(custom(&event).get("subject").is_none(), "null is unset");
    }

    #[test]
    fn structured_data_base64_is_decoded_to_bytes() {
        let (event, _) = decode(
            &structured_headers(),
            fixture("cloudevents-structured-base64.json").into(),
        )
        .unwrap();
        assert_eq!(
            &event.body[..],
            b"\x80\x01\x00\x01\x00\x00\x00\x03add\x00\x00\x00\x00\xff"
        );
        assert_eq!(
            event.content_type.as_deref(),
            Some("application/vnd.apache.thrift.binary")
        );
        let custom = custom(&event);
        assert!(custom.get("data_base64").is_none());
        assert!(custom.get("unsetextension").is_none());
    }

    #[test]
    fn structured_mode_accepts_content_type_parameters() {
        let (h, body) = http_fixture("cloudevents-structured.http");
        let (event, attrs) = decode(&h, body).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&event.body).unwrap(),
            json!({"appinfoA": "abc"})
        );
        assert_eq!(event.content_type.as_deref(), Some("application/json"));
        assert_eq!(attrs.unwrap().source, "/mycontext");
    }

    #[test]
    fn binary_spec_example_gives_body_and_header_attributes() {
        let (h, body) = http_fixture("cloudevents-binary.http");
        let (event, attrs) = decode(&h, body.clone()).unwrap();
        assert_eq!(event.body, body);
        assert_eq!(
            event.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            custom(&event),
            json!({
                "specversion": "1.0",
                "type": "com.example.someevent",
                "time": "2018-04-05T03:56:24Z",
                "id": "1234-1234-1234",
                "source": "/mycontext/subcontext",
                "subject": "123",
                "comexampleextension1": "value",
                "datacontenttype": "application/json; charset=utf-8"
            })
        );
        assert_eq!(attrs.unwrap().event_type, "com.example.someevent");
    }

    #[test]
    fn binary_events_with_text_or_bytes_keep_their_attributes() {
        // The Go runtime read binary mode only with application/json.
        for (ct, body) in [
            ("text/plain", &b"hello"[..]),
            ("application/octet-stream", b"\x00\xff"),
        ] {
            let h = headers(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-type", "t"),
                ("ce-source", "s"),
                ("content-type", ct),
            ]);
            let (event, attrs) = decode(&h, Bytes::copy_from_slice(body)).unwrap();
            assert_eq!(&event.body[..], body);
            assert_eq!(custom(&event)["id"], "1", "{ct}");
            assert!(attrs.is_some());
        }
    }

    #[test]
    fn binary_header_values_are_percent_decoded_and_repeats_joined() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-type", "t"),
            ("ce-source", "s"),
            ("ce-subject", "caf%C3%A9%20au%20lait"),
            ("ce-tags", "a"),
            ("ce-tags", "b"),
        ]);
        let (event, _) = decode(&h, Bytes::new()).unwrap();
        let cc = event.client_context.unwrap();
        assert!(cc.is_ascii(), "{cc}");
        let custom: Value = serde_json::from_str::<Value>(&cc).unwrap()["custom"].clone();
        assert_eq!(custom["subject"], "café au lait");
        assert_eq!(custom["tags"], "a,b");
    }

    #[test]
    fn attributes_join_the_callers_client_context() {
        let cc = base64::engine::general_purpose::STANDARD
            .encode(r#"{"client":{"app_title":"x"},"custom":{"k":"v","id":"old"}}"#);
        let mut h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "new"),
            ("ce-type", "t"),
            ("ce-source", "s"),
        ]);
        h.insert("x-amz-client-context", cc.parse().unwrap());
        let (event, _) = decode(&h, Bytes::new()).unwrap();
        let cc: Value = serde_json::from_str(event.client_context.as_deref().unwrap()).unwrap();
        assert_eq!(cc["client"]["app_title"], "x");
        assert_eq!(cc["custom"]["k"], "v");
        assert_eq!(cc["custom"]["id"], "new", "the event wins");
    }

    #[test]
    fn requests_that_are_not_cloudevents_pass_through() {
        let h = headers(&[("content-type", "application/json")]);
        let (event, attrs) = decode(&h, Bytes::from_static(b"{\"a\":1}")).unwrap();
        assert_eq!(&event.body[..], b"{\"a\":1}");
        assert_eq!(event.content_type.as_deref(), Some("application/json"));
        assert_eq!(event.client_context, None);
        assert_eq!(attrs, None);
    }

    #[test]
    fn invalid_cloudevents_are_bad_requests() {
        let structured = |body: &str| decode(&structured_headers(), Bytes::from(body.to_owned()));
        let cases = [
            (structured("{not json"), "not JSON"),
            (structured("[1]"), "not a JSON object"),
            (
                structured(r#"{"specversion":"1.0","type":"t","source":"s"}"#),
                "id",
            ),
            (
                structured(r#"{"specversion":"2.0","id":"1","type":"t","source":"s"}"#),
                "2.0",
            ),
            (
                structured(r#"{"id":"1","type":"t","source":"s"}"#),
                "specversion",
            ),
            (
                structured(r#"{"specversion":"1.0","id":"","type":"t","source":"s"}"#),
                "`id` is empty",
            ),
            (
                structured(
                    r#"{"specversion":"1.0","id":"1","type":"t","source":"s","time":"yesterday"}"#,
                ),
                "",
            ),
            (
                structured(
                    r#"{"specversion":"1.0","id":"1","type":"t","source":"s","data_base64":"%%"}"#,
                ),
                "",
            ),
        ];
        for (result, want) in cases {
            let err = result.unwrap_err().0;
            assert!(err.starts_with("invalid structured CloudEvent"), "{err}");
            assert!(err.contains(want), "{err}");
        }
        let binary = |pairs: &[(&str, &str)]| decode(&headers(pairs), Bytes::new());
        let cases = [
            (
                binary(&[
                    ("ce-specversion", "1.0"),
                    ("ce-type", "t"),
                    ("ce-source", "s"),
                ]),
                "id",
            ),
            (
                binary(&[
                    ("ce-specversion", "9.9"),
                    ("ce-id", "1"),
                    ("ce-type", "t"),
                    ("ce-source", "s"),
                ]),
                "9.9",
            ),
            (
                binary(&[
                    ("ce-specversion", "1.0"),
                    ("ce-id", "1"),
                    ("ce-type", "t"),
                    ("ce-source", "s"),
                    ("ce-time", "noon"),
                ]),
                "time",
            ),
            (
                binary(&[
                    ("ce-specversion", "1.0"),
                    ("ce-id", "1"),
                    ("ce-type", "t"),
                    ("ce-source", ""),
                ]),
                "source",
            ),
            (
                binary(&[("ce-id", "1"), ("ce-type", "t"), ("ce-source", "s")]),
                "ce-specversion",
            ),
        ];
        for (result, want) in cases {
            let err = result.unwrap_err().0;
            assert!(err.starts_with("invalid binary-mode CloudEvent"), "{err}");
            assert!(err.contains(want), "{err}");
        }
        let batch = headers(&[("content-type", "application/cloudevents-batch+json")]);
        assert!(
            decode(&batch, Bytes::from_static(b"[]"))
                .unwrap_err()
                .0
                .contains("batched")
        );
    }

    #[test]
    fn settings_default_to_the_go_runtimes() {
        let s = defaults();
        assert_eq!(s.event_type.as_deref(), Some("ce.klr.triggermesh.io"));
        assert_eq!(s.source, "knative-lambda-runtime");
        assert_eq!(s.subject.as_deref(), Some("klr-response"));
        assert_eq!(s.mode, ResponseMode::Data);
        let s = settings(
            Some("my.type".into()),
            Some("src".into()),
            Some("".into()),
            Some("Event".into()),
        )
        .unwrap();
        assert_eq!(
            (s.event_type.as_deref(), s.source.as_str()),
            (Some("my.type"), "src")
        );
        assert_eq!((s.subject, s.mode), (None, ResponseMode::Event));
        assert_eq!(
            settings(Some(" ".into()), None, None, None)
                .unwrap()
                .event_type,
            None
        );
        assert!(
            settings(None, Some("".into()), None, None)
                .unwrap_err()
                .contains("CE_OVERRIDES_SOURCE")
        );
        assert!(
            settings(None, None, None, Some("both".into()))
                .unwrap_err()
                .contains("CE_FUNCTION_RESPONSE_MODE")
        );
    }

    #[test]
    fn json_replies_become_binary_mode_events_with_the_overrides() {
        let r = encode("req-1", response(b"{\"a\": 1}\n"), &defaults());
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["ce-specversion"], "1.0");
        assert_eq!(h["ce-id"], "req-1");
        assert_eq!(h["ce-type"], "ce.klr.triggermesh.io");
        assert_eq!(h["ce-source"], "knative-lambda-runtime");
        assert_eq!(h["ce-subject"], "klr-response");
        assert_eq!(h["content-type"], "application/json");
        assert!(h.contains_key("ce-time"));
        assert_eq!(body_of(&r), "{\"a\": 1}", "as the function wrote it");
        let (event, attrs) = read_back(&r);
        assert_eq!(attrs.event_type, "ce.klr.triggermesh.io");
        assert_eq!(custom(&event)["subject"], "klr-response");
    }

    #[test]
    fn text_replies_become_text_data_as_the_go_runtime_made_them() {
        let r = encode("id", response(b"\"hello \\\"you\\\"\""), &defaults());
        assert_eq!(
            (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
            ("text/plain", Bytes::from("hello \"you\""))
        );
        let r = encode("id", response(b"  plain words \n"), &defaults());
        assert_eq!(body_of(&r), "plain words");
        let r = encode("id", response(b"42"), &defaults());
        assert_eq!(
            (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
            ("text/plain", Bytes::from("42"))
        );
        let png = Outcome::Response {
            body: Bytes::from_static(b"\x89PNG\xff"),
            content_type: Some("image/png".into()),
        };
        let r = encode("id", png, &defaults());
        assert_eq!(
            (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
            ("image/png", Bytes::from_static(b"\x89PNG\xff"))
        );
    }

    #[test]
    fn attribute_values_are_percent_encoded_in_headers() {
        let s = settings(None, Some("/src".into()), Some("café 100%".into()), None).unwrap();
        let r = encode("id", response(b"{}"), &s);
        assert_eq!(r.headers()["ce-subject"], "caf%C3%A9%20100%25");
        let (event, _) = read_back(&r);
        assert_eq!(custom(&event)["subject"], "café 100%");
    }

    #[test]
    fn empty_replies_and_an_empty_type_send_no_event() {
        assert_eq!(encode("id", response(b""), &defaults()).status(), 204);
        assert_eq!(encode("id", response(b" \n"), &defaults()).status(), 204);
        let no_type = settings(Some("".into()), None, None, None).unwrap();
        let r = encode("id", response(b"{}"), &no_type);
        assert_eq!(
            (r.status(), body_of(&r)),
            (StatusCode::NO_CONTENT, Bytes::new())
        );
        assert!(!r.headers().contains_key("ce-id"));
    }

    #[test]
    fn event_mode_fills_in_missing_attributes() {
        let s = settings(None, None, None, Some("event".into())).unwrap();
        let r = encode(
            "req-9",
            response(br#"{"data": {"x": 1}, "subject": "mine"}"#),
            &s,
        );
        assert_eq!(r.status(), 200);
        let h = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(
            (h("ce-id"), h("ce-type"), h("ce-source")),
            (
                "req-9".into(),
                "ce.klr.triggermesh.io".into(),
                "knative-lambda-runtime".into()
            )
        );
        assert_eq!(
            (h("ce-specversion"), h("ce-subject")),
            ("1.0".into(), "mine".into())
        );
        assert!(r.headers().contains_key("ce-time"));
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&body_of(&r)).unwrap(),
            json!({"x": 1})
        );

        let own = br#"{"specversion":"1.0","id":"e1","type":"my.t","source":"/me","time":"2020-01-01T00:00:00Z","ext":"v","datacontenttype":"text/plain","data":"hi"}"#;
        let r = encode("req-9", response(own), &s);
        let h = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(
            [h("ce-id"), h("ce-type"), h("ce-source"), h("ce-ext")],
            ["e1", "my.t", "/me", "v"]
        );
        assert!(
            h("ce-time").starts_with("2020-01-01T00:00:00"),
            "{}",
            h("ce-time")
        );
        assert_eq!(
            (h("content-type"), body_of(&r)),
            ("text/plain".into(), Bytes::from("hi"))
        );
    }

    #[test]
    fn event_mode_refuses_replies_that_are_not_events() {
        let s = settings(None, None, None, Some("event".into())).unwrap();
        for bad in [
            &b"not json"[..],
            b"[1]",
            br#"{"specversion":"0.1"}"#,
            br#"{"id":""}"#,
        ] {
            let r = encode("id", response(bad), &s);
            assert_eq!(r.status(), 502, "{}", String::from_utf8_lossy(bad));
            let body: Value = serde_json::from_slice(&body_of(&r)).unwrap();
            assert_eq!(body["errorType"], "InvalidCloudEvent");
        }
    }

    #[test]
    fn errors_and_failures_keep_the_passthrough_replies() {
        let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
        let r = encode("id", Outcome::FunctionError(err), &defaults());
        assert_eq!(r.status(), 500);
        assert!(!r.headers().contains_key("ce-id"));
        let r = encode(
            "id",
            Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1))),
            &defaults(),
        );
        assert_eq!(r.status(), 504);
    }
}
