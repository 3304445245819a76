//! The request half of the CloudEvents wrapper: a structured- or binary-mode event as the
//! function's payload and client context.

use bytes::Bytes;
use cloudevents::Event as CloudEvent;
use cloudevents::event::{AttributesReader, Data, SpecVersion};
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue};
use http::{HeaderMap, header};
use serde_json::Value;

use super::{BATCH, CeAttrs, STRUCTURED};
use crate::dispatch::Event;
use crate::wrapper::BadRequest;
use crate::wrapper::context::{Context, ContextOptions};

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
pub fn decode(
    headers: &HeaderMap,
    body: Bytes,
    options: &ContextOptions,
) -> Result<(Event, Option<CeAttrs>), BadRequest> {
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
        Some(STRUCTURED) => return structured(headers, &body, options),
        Some(BATCH) => {
            return Err(BadRequest(
                "batched CloudEvents are not supported; send one event per request".into(),
            ));
        }
        _ => {}
    }
    if headers.contains_key("ce-specversion") {
        return binary(headers, body, options);
    }
    if headers.keys().any(|k| k.as_str().starts_with("ce-")) {
        return Err(BadRequest(
            "invalid binary-mode CloudEvent: the ce-specversion header is missing".into(),
        ));
    }
    Ok((crate::wrapper::decode(headers, body, options)?, None))
}

fn structured(
    headers: &HeaderMap,
    body: &[u8],
    options: &ContextOptions,
) -> Result<(Event, Option<CeAttrs>), BadRequest> {
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
    let context = Context {
        content_type: declared.or_else(|| ce.data().map(|_| default_type.to_owned())),
        ..Context::read(headers, options)?
    };
    let event = with_attributes(context, attributes).into_event(Bytes::from(payload))?;
    Ok((event, Some(labels(&ce))))
}

fn binary(
    headers: &HeaderMap,
    body: Bytes,
    options: &ContextOptions,
) -> Result<(Event, Option<CeAttrs>), BadRequest> {
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
    let context = Context::read(headers, options)?;
    let event = with_attributes(context, attributes).into_event(body)?;
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
pub(super) fn check(ce: &CloudEvent) -> Result<(), String> {
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

/// The context with the attributes added to the client context's `custom` (the caller's
/// `X-Amz-Client-Context`, if any, keeps its other fields).
fn with_attributes(mut context: Context, attributes: Vec<(String, String)>) -> Context {
    context
        .client_context
        .get_or_insert_default()
        .custom
        .get_or_insert_default()
        .extend(attributes);
    context
}

/// The HTTP binding's percent-decoding of a header value; a value that does not decode to
/// UTF-8 is kept as sent.
fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .unwrap_or_else(|_| value.to_owned())
}
