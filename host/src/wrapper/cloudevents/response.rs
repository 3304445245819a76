//! The response half of the CloudEvents wrapper: the function's reply as a binary-mode
//! CloudEvent.

use bytes::Bytes;
use cloudevents::event::{AttributesReader, AttributesWriter, Data, SpecVersion};
use cloudevents::message::{
    BinaryDeserializer, BinarySerializer, Error as MessageError, MessageAttributeValue,
};
use cloudevents::{Event as CloudEvent, EventBuilder, EventBuilderV10};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::Full;
use serde_json::Value;

use super::request::check;
use super::{HEADER_VALUE, ResponseMode, Settings};
use crate::dispatch::Outcome;
use crate::reply::{IntoReply, Reply};
use crate::wrapper::BadReply;

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
        other => return crate::wrapper::encode(request_id, other),
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
    reply.unwrap_or_else(|message| BadReply::CloudEvent(message).into_reply())
}

/// The `ce-*` headers of a streamed response's event in binary mode (data mode): the same
/// attributes as a buffered one, with the function's content type, since the data's kind
/// cannot be read from bytes still to come. `None`: no event (the type is set empty).
pub fn stream_headers(
    request_id: &str,
    content_type: &str,
    settings: &Settings,
) -> Option<Result<HeaderMap, String>> {
    let event_type = settings.event_type.as_deref()?;
    let mut builder = EventBuilderV10::default()
        .id(request_id)
        .ty(event_type)
        .source(settings.source.as_str());
    if let Some(subject) = &settings.subject {
        builder = builder.subject(subject.as_str());
    }
    let headers = builder
        .build()
        .map_err(|e| format!("the event cannot be built: {e}"))
        .and_then(|mut e| {
            e.set_datacontenttype(Some(content_type));
            e.deserialize_binary(BinaryReply::default())
                .map_err(|e| format!("the event cannot be sent: {e}"))
        })
        .map(|reply| reply.into_parts().0.headers);
    Some(headers)
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
                HeaderValue::from_str(
                    &percent_encoding::utf8_percent_encode(&value.to_string(), HEADER_VALUE)
                        .to_string(),
                ),
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
