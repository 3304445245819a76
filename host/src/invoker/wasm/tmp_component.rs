//! The writable `/tmp` of a WASI 0.2 component (Lambda or `wasi:http`) and its cap
//! (`WASM_TMP_LIMIT`), as a core module has them (tmp.rs): the slot's scratch folder is
//! preopened as `/tmp`, and every write to a file is checked against the folder's usage on
//! disk before it runs, failing with `insufficient-space` (ENOSPC) past the cap.
//!
//! A component writes a file in one of two ways: `descriptor.write`, or the output stream
//! that `descriptor.write-via-stream` and `descriptor.append-via-stream` hand out (how
//! wasi-libc, hence Rust's std and Python, write files). The linker's versions of these three
//! are replaced by ones that check first (`write`) or wrap the stream they return in a
//! metered one (the other two), then run wasmtime-wasi's own implementation. The only
//! writable preopen is `/tmp`, so every file write lands there.
//!
//! The five calls that can put an entry in a folder (`open-at` with `create`,
//! `create-directory-at`, `symlink-at`, `link-at`, `rename-at`) mark the folder first, so that
//! a slot whose guest created nothing is not read again to be emptied
//! ([`Entries::WhenTouched`]).

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{self, Descriptor, ErrorCode, HostDescriptor};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::tmp::{Entries, TmpQuota};
use crate::tenancy::scratch::Scratch;

/// The interface whose file writes are metered, at the version wasmtime-wasi links (a
/// component importing any other 0.2 version is matched to it).
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// A store whose component may have a metered `/tmp`.
pub trait TmpView: WasiView {
    /// The cap of this store's `/tmp`; `None` where it has none (nothing to meter).
    fn tmp(&self) -> Option<&TmpQuota>;
}

/// Replaces the three file-writing calls of `wasi:filesystem/types` on `linker` (which
/// already has WASI 0.2) with metered ones.
pub fn add_to_linker<T: TmpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut fs = linker.instance(TYPES)?;
    fs.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, T>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let data = store.data_mut();
                if data.tmp().is_some_and(|q| !q.allows(buf.len() as u64)) {
                    return Ok((Err(ErrorCode::InsufficientSpace),));
                }
                let mut view = data.filesystem();
                let r = HostDescriptor::write(&mut view, fd, buf, offset).await;
                answer(&mut view, r)
            })
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, T>, (fd, offset): (Resource<Descriptor>, u64)| {
            let data = store.data_mut();
            let quota = data.tmp().cloned();
            let mut view = data.filesystem();
            let opened = HostDescriptor::write_via_stream(&mut view, fd, offset);
            metered(opened, quota, &mut view)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, T>, (fd,): (Resource<Descriptor>,)| {
            let data = store.data_mut();
            let quota = data.tmp().cloned();
            let mut view = data.filesystem();
            let opened = HostDescriptor::append_via_stream(&mut view, fd);
            metered(opened, quota, &mut view)
        },
    )?;
    add_marking_calls(&mut fs)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The calls that can create an entry, each marking the folder before wasmtime-wasi's own
/// implementation runs.
fn add_marking_calls<T: TmpView + 'static>(
    fs: &mut wasmtime::component::LinkerInstance<'_, T>,
) -> wasmtime::Result<()> {
    type Fd = Resource<Descriptor>;
    fs.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, path_flags, path, open, flags): (
            Fd,
            types::PathFlags,
            String,
            types::OpenFlags,
            types::DescriptorFlags,
        )| {
            Box::new(async move {
                let data = store.data_mut();
                if open.contains(types::OpenFlags::CREATE) {
                    touch(data);
                }
                let mut view = data.filesystem();
                let r = HostDescriptor::open_at(&mut view, fd, path_flags, path, open, flags).await;
                answer(&mut view, r)
            })
        },
    )?;
    fs.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, T>, (fd, path): (Fd, String)| {
            Box::new(async move {
                let data = store.data_mut();
                touch(data);
                let mut view = data.filesystem();
                let r = HostDescriptor::create_directory_at(&mut view, fd, path).await;
                answer(&mut view, r)
            })
        },
    )?;
    fs.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, T>, (fd, old, new): (Fd, String, String)| {
            Box::new(async move {
                let data = store.data_mut();
                touch(data);
                let mut view = data.filesystem();
                let r = HostDescriptor::symlink_at(&mut view, fd, old, new).await;
                answer(&mut view, r)
            })
        },
    )?;
    fs.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, flags, old, to, new): (Fd, types::PathFlags, String, Fd, String)| {
            Box::new(async move {
                let data = store.data_mut();
                touch(data);
                let mut view = data.filesystem();
                let r = HostDescriptor::link_at(&mut view, fd, flags, old, to, new).await;
                answer(&mut view, r)
            })
        },
    )?;
    fs.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, T>, (fd, old, to, new): (Fd, String, Fd, String)| {
            Box::new(async move {
                let data = store.data_mut();
                touch(data);
                let mut view = data.filesystem();
                let r = HostDescriptor::rename_at(&mut view, fd, old, to, new).await;
                answer(&mut view, r)
            })
        },
    )?;
    Ok(())
}

fn touch<T: TmpView>(data: &T) {
    if let Some(q) = data.tmp() {
        q.touch();
    }
}

/// A call's result as the guest receives it: wasmtime-wasi's error turned into its
/// `error-code` (or a trap), as its own bindings do.
fn answer<R>(
    view: &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    r: wasmtime_wasi::p2::FsResult<R>,
) -> wasmtime::Result<(Result<R, ErrorCode>,)> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(types::Host::convert_error_code(view, e)?),)),
    }
}

/// How a component slot's `/tmp` is emptied: read again only after a call marked it.
pub fn entries(reaches_folders: bool) -> Entries {
    if reaches_folders {
        Entries::WhenTouched
    } else {
        Entries::Never
    }
}

type Opened = wasmtime_wasi::p2::FsResult<Resource<DynOutputStream>>;

/// The guest's answer to a `*-via-stream` call: the stream wasmtime-wasi opened, swapped in
/// the table for a metered wrapper of it when the store has a cap.
fn metered(
    opened: Opened,
    quota: Option<TmpQuota>,
    view: &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
    match (opened, quota) {
        (Ok(stream), Some(quota)) => Ok((Ok(wrap(view.table, stream, quota)?),)),
        (opened, _) => answer(view, opened),
    }
}

/// Takes `stream` out of `table` and puts a metered wrapper of it in its place.
fn wrap(
    table: &mut ResourceTable,
    stream: Resource<DynOutputStream>,
    quota: TmpQuota,
) -> wasmtime::Result<Resource<DynOutputStream>> {
    let inner = table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(Metered { inner, quota });
    Ok(table.push(wrapped)?)
}

/// A file's output stream whose writes are checked against the `/tmp` cap first.
struct Metered {
    inner: DynOutputStream,
    quota: TmpQuota,
}

impl Metered {
    fn check(&self, len: usize) -> StreamResult<()> {
        if self.quota.allows(len as u64) {
            return Ok(());
        }
        let full = std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32);
        Err(StreamError::LastOperationFailed(full.into()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Metered {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Metered {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check(bytes.len())?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.check(nelem)?;
        self.inner.write_zeroes(nelem)
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// Whether `component` can reach a preopened folder at all: only through
/// `wasi:filesystem/preopens`. One that does not import it gets no `/tmp` (nor is its empty
/// folder read again between environments).
pub fn reaches_folders(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:filesystem/preopens@"))
}

/// Preopens `scratch` as the guest's writable `/tmp` (and sets `TMPDIR`); its cap, or `None`
/// without a folder.
pub fn preopen(
    b: &mut wasmtime_wasi::WasiCtxBuilder,
    scratch: Option<&std::sync::Arc<Scratch>>,
    limit: usize,
) -> anyhow::Result<Option<TmpQuota>> {
    use anyhow::Context as _;
    let Some(s) = scratch else {
        return Ok(None);
    };
    b.preopened_dir(s.path(), "/tmp", wasmtime_wasi::FsPerms::ReadWrite)
        .map_err(anyhow::Error::from)
        .context("cannot open the scratch folder as /tmp")?;
    b.env("TMPDIR", "/tmp");
    Ok(Some(TmpQuota::new(s.clone(), limit)))
}
