//! Finds or makes the precompiled artifact of a module or component: the image's own
//! (`bootstrap.cwasm` beside `bootstrap.wasm`, made by `aws-custom-runtime compile`), else
//! the module cache (`WASM_CACHE_DIR`, keyed by the wasm bytes' hash and the engine), else
//! a fresh compilation, written to the cache. Every artifact read from disk passes
//! `artifact::read_verified` first; one that does not is logged and treated as a miss.
//!
//! The entry points take the wasm bytes and the engine: [`load`] for a core module,
//! [`load_component`] for a component (wasi:http or Lambda), [`artifact`] for the verified
//! serialized bytes of either (the caller deserialises them with the matching wasmtime type).
//! This is the only cache: core modules and both kinds of component go through it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::artifact;

/// Where the module came from, for the log and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// The precompiled artifact shipped beside the module.
    Precompiled(PathBuf),
    Cache(PathBuf),
    Compiled {
        cached_at: Option<PathBuf>,
    },
}

impl Source {
    /// Logs where `what` (a module, a component) came from; the tests read these lines.
    pub fn log(&self, what: &str) {
        match self {
            Source::Precompiled(p) => tracing::info!(
                "loaded precompiled artifact {}; compilation skipped",
                p.display()
            ),
            Source::Cache(p) => tracing::info!(
                "loaded precompiled {what} from cache {}; compilation skipped",
                p.display()
            ),
            Source::Compiled { cached_at: Some(p) } => {
                tracing::info!("precompiled {what} cached at {}", p.display())
            }
            Source::Compiled { cached_at: None } => {}
        }
    }
}

/// Where to look for an artifact before compiling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Places<'a> {
    /// The image's artifact (`bootstrap.cwasm`), if one is expected.
    pub precompiled: Option<&'a Path>,
    /// The module cache folder.
    pub cache_dir: Option<&'a Path>,
}

/// The verified serialized artifact of `bytes` (a core module or a component) for `engine`:
/// read from one of `places` when one vouches for it, else compiled (and cached).
pub fn artifact(
    engine: &Engine,
    bytes: &[u8],
    places: Places<'_>,
) -> anyhow::Result<(Vec<u8>, Source)> {
    if let Some(path) = places.precompiled.filter(|p| p.exists()) {
        match trusted_file(path, false)
            .and_then(|()| Ok(artifact::read_verified(engine, bytes, path)?))
        {
            Ok(a) => return Ok((a, Source::Precompiled(path.to_path_buf()))),
            Err(e) => tracing::warn!(
                "not using the precompiled artifact {}: {e:#}; compiling instead",
                path.display()
            ),
        }
    }
    let cache = places
        .cache_dir
        .filter(|d| usable_dir(d).is_ok())
        .map(|d| d.join(format!("{}.cwasm", key(engine, bytes))));
    if let Some(path) = cache.as_deref().filter(|p| p.exists()) {
        match trusted_file(path, true)
            .and_then(|()| Ok(artifact::read_verified(engine, bytes, path)?))
        {
            Ok(a) => return Ok((a, Source::Cache(path.to_path_buf()))),
            Err(e) => tracing::warn!(
                "cache miss: ignoring cached artifact {}: {e:#}",
                path.display()
            ),
        }
    }
    let compiled = precompile(engine, bytes)?;
    let cached_at =
        cache.and_then(
            |path| match artifact::write(engine, bytes, &compiled, &path, 0o600) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!("cannot write the module cache at {}: {e:#}", path.display());
                    None
                }
            },
        );
    Ok((compiled, Source::Compiled { cached_at }))
}

/// A core module for `engine` (see [`artifact`]), its memory images made.
pub fn load(engine: &Engine, bytes: &[u8], places: Places<'_>) -> anyhow::Result<(Module, Source)> {
    let (bytes_out, source) = artifact(engine, bytes, places)?;
    // SAFETY: the bytes were compiled by this engine a moment ago, or read from a private
    // file whose record says this engine made them from exactly `bytes`, and their digest
    // matched (`artifact::read_verified`).
    #[allow(unsafe_code)]
    let (module, source) = match unsafe { Module::deserialize(engine, &bytes_out) } {
        Ok(m) => (m, source),
        Err(e) if !matches!(source, Source::Compiled { .. }) => {
            tracing::warn!("cannot load the artifact ({e:#}); compiling instead");
            let compiled = precompile(engine, bytes)?;
            #[allow(unsafe_code)]
            let module = unsafe { Module::deserialize(engine, &compiled) }?;
            (module, Source::Compiled { cached_at: None })
        }
        Err(e) => {
            return Err(anyhow::Error::from(e).context("cannot load the module just compiled"));
        }
    };
    make_images(|| module.initialize_copy_on_write_image())?;
    Ok((module, source))
}

/// A component for `engine` (see [`artifact`]), the memory images of its modules made.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    places: Places<'_>,
) -> anyhow::Result<(Component, Source)> {
    let (bytes_out, source) = artifact(engine, bytes, places)?;
    // SAFETY: as in `load`.
    #[allow(unsafe_code)]
    let (component, source) = match unsafe { Component::deserialize(engine, &bytes_out) } {
        Ok(c) => (c, source),
        Err(e) if !matches!(source, Source::Compiled { .. }) => {
            tracing::warn!("cannot load the artifact ({e:#}); compiling instead");
            let compiled = precompile(engine, bytes)?;
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize(engine, &compiled) }?;
            (component, Source::Compiled { cached_at: None })
        }
        Err(e) => {
            return Err(anyhow::Error::from(e).context("cannot load the component just compiled"));
        }
    };
    make_images(|| component.initialize_copy_on_write_image())?;
    Ok((component, source))
}

/// How long [`make_images`] tries again while the kernel refuses to seal an image.
const SEAL_RETRY_FOR: Duration = Duration::from_secs(10);

/// Makes the copy-on-write memory images of a module or component (`make`) at load, rather
/// than at the first instantiation, whose failure would fail it. wasmtime writes each image
/// into a memfd and seals it; Linux refuses the seal with EBUSY while it counts a page just
/// written as still referenced (seen once in CI, and passing). That refusal is
/// tried again, with growing pauses, for up to [`SEAL_RETRY_FOR`]; any other error is final.
fn make_images(make: impl Fn() -> wasmtime::Result<()>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let e = match make() {
            Ok(()) => return Ok(()),
            Err(e) => anyhow::Error::from(e),
        };
        if !refused_as_busy(&e) || started.elapsed() >= SEAL_RETRY_FOR {
            return Err(e.context("cannot make the memory image of bootstrap.wasm"));
        }
        tracing::debug!("memory image not sealed yet ({e:#}); trying again in {pause:?}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Whether `e` was caused by an EBUSY from the system.
fn refused_as_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(nix::libc::EBUSY))
    })
}

/// Compiles `bytes`, a core module or a component (told apart by the wasm header's layer
/// field), to a serialized artifact for `engine`.
pub fn precompile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let started = Instant::now();
    let compiled = if super::lambda_component::is_component(bytes) {
        engine.precompile_component(bytes)
    } else {
        engine.precompile_module(bytes)
    }
    .map_err(anyhow::Error::from)
    .context("cannot compile bootstrap.wasm")?;
    tracing::info!("compiled bootstrap.wasm in {:?}", started.elapsed());
    Ok(compiled)
}

/// The cache file name: hex SHA-256 of the module bytes and the engine key.
fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut both = artifact::digest(bytes);
    both.push_str(&artifact::engine_key(engine));
    artifact::digest(both.as_bytes())
}

/// Creates the folder private to this user, or checks that it is.
fn usable_dir(dir: &Path) -> anyhow::Result<()> {
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

/// An artifact and its record must be writable by nobody but their owner, who is this
/// user (`own`) or, for an image's files, this user or root.
fn trusted_file(path: &Path, own: bool) -> anyhow::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    for p in [path.to_path_buf(), artifact::record_path(path)] {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue; // a missing record is reported by `read_verified`
        };
        let owner_ok = meta.uid() == me || (!own && meta.uid() == 0);
        if !meta.is_file() || !owner_ok || meta.mode() & 0o022 != 0 {
            anyhow::bail!(
                "{} must be a file owned by {} and writable by nobody else",
                p.display(),
                if own {
                    "this user"
                } else {
                    "this user or root"
                }
            );
        }
    }
    Ok(())
}

/// The image's artifact for `module`: `bootstrap.cwasm` beside `bootstrap.wasm`.
pub fn precompiled_path(module: &Path) -> PathBuf {
    module.with_extension("cwasm")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::make_images;

    fn busy() -> wasmtime::Error {
        wasmtime::Error::from(std::io::Error::from_raw_os_error(nix::libc::EBUSY))
    }

    #[test]
    fn a_seal_refused_as_busy_is_tried_again_until_it_succeeds() {
        let calls = Cell::new(0);
        make_images(|| {
            calls.set(calls.get() + 1);
            if calls.get() < 4 { Err(busy()) } else { Ok(()) }
        })
        .unwrap();
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn any_other_failure_to_make_the_images_is_final() {
        let calls = Cell::new(0);
        let e = make_images(|| {
            calls.set(calls.get() + 1);
            Err(wasmtime::Error::from(std::io::Error::from_raw_os_error(
                nix::libc::ENOMEM,
            )))
        })
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert!(
            format!("{e:#}").contains("cannot make the memory image"),
            "{e:#}"
        );
    }
}
