//! Compiles a component once and keeps its precompiled artifact in `WASM_CACHE_DIR`, with
//! the module cache's key, folder and file rules (see [`super::super::cache`]): a
//! componentize-py component takes tens of seconds to compile, a cached one milliseconds.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::invoker::wasm::cache::{self, Source};

/// Loads `bytes` as a component for `engine`, from `cache_dir` when an artifact for exactly
/// these bytes and engine settings is there.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, Source)> {
    let dir = cache_dir.filter(|d| cache::usable_dir(d).is_ok());
    let path = dir.map(|d| d.join(format!("{}.cwasm", cache::key(engine, bytes))));
    if let Some(path) = path
        .as_deref()
        .filter(|p| p.is_file() && cache::private_file(p))
    {
        match deserialize(engine, path) {
            Ok(c) => return Ok((c, Source::Cache(path.to_path_buf()))),
            Err(e) => tracing::warn!("ignoring cached component {}: {e:#}", path.display()),
        }
    }
    let started = Instant::now();
    let artifact = engine
        .precompile_component(bytes)
        .map_err(anyhow::Error::from)
        .context("cannot compile the bootstrap.wasm component")?;
    tracing::info!(
        "compiled bootstrap.wasm component in {:?}",
        started.elapsed()
    );
    if let Some(path) = path {
        match cache::store(&path, &artifact) {
            Ok(()) => {
                let c = deserialize(engine, &path)
                    .context("cannot load the component just compiled")?;
                return Ok((
                    c,
                    Source::Compiled {
                        cached_at: Some(path),
                    },
                ));
            }
            Err(e) => tracing::warn!("cannot write the module cache at {}: {e:#}", path.display()),
        }
    }
    // SAFETY: the artifact was produced by this engine a moment ago, in memory.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &artifact) }?;
    Ok((component, Source::Compiled { cached_at: None }))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: as for modules: the folder and the file are this user's and writable by
    // nobody else (checked by the callers), and wasmtime refuses artifacts of another
    // version or settings.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}
