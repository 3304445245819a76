//! Compiles a module once and keeps the precompiled artifact on disk, keyed by the module's
//! hash and the engine's settings, so that later starts skip compilation. Core modules and
//! components alike ([`Artifact`]).

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// Where the module came from, for the log and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Cache(PathBuf),
    Compiled { cached_at: Option<PathBuf> },
}

/// What the cache holds: a core module or a component, compiled for one engine.
#[allow(unsafe_code)]
pub trait Artifact: Sized {
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// `artifact` must come from [`Artifact::precompile`] of this wasmtime, untampered.
    unsafe fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Self>;
    /// # Safety
    /// As [`Artifact::deserialize`], for the file's contents.
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
}

#[allow(unsafe_code)]
impl Artifact for Module {
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }
    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_module(bytes)
    }
    unsafe fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Module::deserialize(engine, artifact) }
    }
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Module::deserialize_file(engine, path) }
    }
}

#[allow(unsafe_code)]
impl Artifact for Component {
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }
    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_component(bytes)
    }
    unsafe fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Component::deserialize(engine, artifact) }
    }
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Component::deserialize_file(engine, path) }
    }
}

/// Loads `bytes` as a module (or component) for `engine`, from `cache_dir` when an artifact
/// for exactly these bytes and engine settings is there.
pub fn load<A: Artifact>(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<(A, Source)> {
    let Some(dir) = cache_dir.and_then(|d| usable_dir(d).ok().map(|()| d)) else {
        let module = compile(engine, bytes)?;
        return Ok((module, Source::Compiled { cached_at: None }));
    };
    let path = dir.join(format!("{}.cwasm", key(engine, bytes)));
    if path.is_file() && private_file(&path) {
        match deserialize(engine, &path) {
            Ok(module) => return Ok((module, Source::Cache(path))),
            Err(e) => tracing::warn!("ignoring cached module {}: {e:#}", path.display()),
        }
    }
    let started = Instant::now();
    let artifact = A::precompile(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("cannot compile bootstrap.wasm")?;
    tracing::info!("compiled bootstrap.wasm in {:?}", started.elapsed());
    match store(&path, &artifact) {
        Ok(()) => match deserialize(engine, &path) {
            Ok(module) => Ok((
                module,
                Source::Compiled {
                    cached_at: Some(path),
                },
            )),
            Err(e) => Err(e.context("cannot load the module just compiled")),
        },
        Err(e) => {
            tracing::warn!("cannot write the module cache at {}: {e:#}", path.display());
            // SAFETY: the artifact was produced by this engine a moment ago, in memory.
            #[allow(unsafe_code)]
            let module = unsafe { A::deserialize(engine, &artifact) }?;
            Ok((module, Source::Compiled { cached_at: None }))
        }
    }
}

fn compile<A: Artifact>(engine: &Engine, bytes: &[u8]) -> anyhow::Result<A> {
    let started = Instant::now();
    let module = A::compile(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("cannot compile bootstrap.wasm")?;
    tracing::info!(
        "compiled bootstrap.wasm in {:?} (no cache)",
        started.elapsed()
    );
    Ok(module)
}

/// Hex SHA-256 of the module bytes and of everything in the engine that makes an artifact
/// incompatible (wasmtime version, target, settings).
pub(crate) fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = Sha256::new();
    h.update(bytes);
    h.update(engine_hash.finish().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(unsafe_code)]
fn deserialize<A: Artifact>(engine: &Engine, path: &Path) -> anyhow::Result<A> {
    // SAFETY: loading native code from a file is only safe if nobody else could have
    // written it: the cache folder and the file are checked to be this user's and not
    // writable by anyone else (`usable_dir`, `private_file`), and wasmtime itself refuses
    // artifacts from another version or settings.
    Ok(unsafe { A::deserialize_file(engine, path) }?)
}

/// Creates the folder private to this user, or checks that it is.
pub(crate) fn usable_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        tracing::warn!(
            "not using module cache {}: it must be a folder owned by this user and writable by nobody else",
            dir.display()
        );
        anyhow::bail!("unsafe cache folder");
    }
    Ok(())
}

pub(crate) fn private_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0)
}

/// Writes atomically (temp file + rename) so that a concurrent start never reads half a file.
pub(crate) fn store(path: &Path, artifact: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
