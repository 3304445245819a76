//! A CloudEvents function for the WASI host (`RESPONSE_FORMAT=CLOUDEVENTS`). The host hands it
//! the event's data as the payload and the event's attributes in the client context
//! (`custom`), as the Go runtime does; whatever it returns, the host wraps as a CloudEvent
//! (type, source and subject from `CE_TYPE`/`CE_SOURCE`/`CE_SUBJECT`).

use lambda_wasi::{Error, LambdaEvent};
use serde_json::{Value, json};

fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let attributes = event
        .context
        .client_context
        .map(|c| c.custom)
        .unwrap_or_default();
    Ok(json!({
        "received": event.payload,
        "type": attributes.get("type"),
        "source": attributes.get("source"),
        "id": attributes.get("id"),
    }))
}

fn main() -> Result<(), Error> {
    lambda_wasi::run_sync(handler)
}
