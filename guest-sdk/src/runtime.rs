//! The invocation loop: asks the host for work, turns its bytes into a typed [`LambdaEvent`],
//! calls the handler and reports the outcome. It owns the ABI's copy protocol and the meaning of
//! its return codes, but never calls the imports itself (`abi` does), so tests drive it with a
//! fake host.

use crate::{Config, Context, Diagnostic, Error, LambdaEvent, Service, abi::Host, deserializer};
use serde::{Serialize, de::DeserializeOwned};
use std::{fmt::Debug, future::poll_fn, sync::Arc};

/// Reusable buffers: an instance in `loop` mode serves many invocations, and reusing these
/// keeps it from allocating a payload-sized buffer for each one.
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) event: Inbox,
    context: Inbox,
    response: Vec<u8>,
}

/// A buffer the host copies a payload into. Its bytes stay initialised up to the largest
/// payload it has held, so a payload no larger than an earlier one is copied in without the
/// buffer being zeroed first (a megabyte event is not memset before every copy).
#[derive(Default)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
    len: usize,
}

impl Inbox {
    /// The payload last copied in.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The ABI's copy protocol: offer at least `size_hint` bytes (the whole buffer when it is
    /// larger); when the host answers with a larger size it copied nothing, so grow to that
    /// size and ask again. `None` when the host answers -1 (no current invocation).
    fn copy_in(&mut self, size_hint: usize, mut call: impl FnMut(&mut [u8]) -> i32) -> Option<()> {
        self.len = 0;
        if self.buf.len() < size_hint {
            self.grow(size_hint);
        }
        loop {
            let size = usize::try_from(call(&mut self.buf)).ok()?;
            if size <= self.buf.len() {
                self.len = size;
                return Some(());
            }
            self.grow(size);
        }
    }

    /// A zeroed buffer of `size` bytes in place of the old one, whose bytes are not needed:
    /// a fresh zeroed allocation is not copied from the old one, and a large one comes from
    /// new linear memory, which is zero already (no memset in a fresh instance).
    fn grow(&mut self, size: usize) {
        self.buf = vec![0; size];
    }
}

/// The context JSON is small; this first offer avoids a second `context` call almost always.
const CONTEXT_SIZE_HINT: usize = 1024;

/// Serves invocations until the host announces shutdown (`next() < 0`), which is a clean exit:
/// in `invocation` isolation that comes right after the first invocation.
pub(crate) async fn run_on<H, S, A, R>(
    host: &mut H,
    mut handler: S,
    env_config: Arc<Config>,
) -> Result<(), Error>
where
    H: Host,
    S: Service<LambdaEvent<A>, Response = R>,
    S::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    R: Serialize,
{
    let mut buffers = Buffers::default();
    loop {
        // A negative announcement is the host shutting this instance down.
        let Ok(announced) = usize::try_from(host.next()) else {
            return Ok(());
        };
        let Some(received) = receive(host, announced, &mut buffers, &env_config) else {
            eprintln!("lambda_wasi: next() announced an invocation the host no longer holds");
            continue;
        };
        if let Err(err) = poll_fn(|cx| handler.poll_ready(cx)).await {
            // A service that cannot become ready is broken for good: fail this invocation
            // rather than leave it to time out, then stop.
            let diagnostic: Diagnostic = err.into();
            complete(host, &Err(diagnostic.clone()));
            return Err(format!(
                "handler failed to become ready: {}: {}",
                diagnostic.error_type, diagnostic.error_message
            )
            .into());
        }
        let outcome = match received {
            Ok(context) => invoke(&mut handler, context, &mut buffers).await,
            Err(diagnostic) => Err(diagnostic),
        };
        complete(host, &outcome.map(|()| buffers.response.as_slice()));
    }
}

/// Fetches the current invocation's payload (into `buffers.event`) and context. `None` when the
/// host has no current invocation; `Some(Err)` when its context does not decode.
pub(crate) fn receive<H: Host>(
    host: &mut H,
    announced: usize,
    buffers: &mut Buffers,
    env_config: &Arc<Config>,
) -> Option<Result<Context, Diagnostic>> {
    buffers.event.copy_in(announced, |buf| host.event(buf))?;
    buffers
        .context
        .copy_in(CONTEXT_SIZE_HINT, |buf| host.context(buf))?;
    let context = buffers.context.data();
    Some(Context::decode(context, Arc::clone(env_config)).map_err(Diagnostic::from))
}

/// Runs the handler on one invocation and serializes its response into `buffers.response`.
async fn invoke<S, A, R>(
    handler: &mut S,
    context: Context,
    buffers: &mut Buffers,
) -> Result<(), Diagnostic>
where
    S: Service<LambdaEvent<A>, Response = R>,
    S::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    R: Serialize,
{
    let event =
        deserializer::deserialize::<A>(buffers.event.data(), context).inspect_err(|err| {
            eprintln!("lambda_wasi: the handler was not called: {err}");
        })?;
    let response = handler.call(event).await.map_err(Into::into)?;
    buffers.response.clear();
    serde_json::to_writer(&mut buffers.response, &response)?;
    Ok(())
}

/// Reports the outcome of the current invocation.
pub(crate) fn complete<H: Host>(host: &mut H, outcome: &Result<&[u8], Diagnostic>) {
    let code = match outcome {
        Ok(body) => host.respond(body),
        Err(diagnostic) => host.fail(&diagnostic.error_type, &diagnostic.error_message),
    };
    if code != 0 {
        // The host already ended the invocation (its deadline passed, say): nothing to redo.
        eprintln!("lambda_wasi: the host refused the invocation's result (code {code})");
    }
}

#[cfg(test)]
mod tests;
