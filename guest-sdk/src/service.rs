//! Handlers as [`tower_service::Service`]s, the shape `lambda_runtime::run` accepts, so that
//! handler code and tower-style services port unchanged.

use std::{
    fmt,
    future::Future,
    task::{self, Poll},
};

pub use tower_service::Service;

/// Makes a [`Service`] out of an async function or closure, like `tower::service_fn`.
pub fn service_fn<T>(f: T) -> ServiceFn<T> {
    ServiceFn { f }
}

/// The [`Service`] returned by [`service_fn`].
#[derive(Clone, Copy)]
pub struct ServiceFn<T> {
    f: T,
}

impl<T> fmt::Debug for ServiceFn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFn")
            .field("f", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T, F, Request, R, E> Service<Request> for ServiceFn<T>
where
    T: FnMut(Request) -> F,
    F: Future<Output = Result<R, E>>,
{
    type Response = R;
    type Error = E;
    type Future = F;

    fn poll_ready(&mut self, _: &mut task::Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> F {
        (self.f)(request)
    }
}
