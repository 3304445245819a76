//! Precompiled artifacts on disk and the integrity record beside each one. wasmtime's
//! deserialisation trusts its input (native code is mapped and run), so nothing read from
//! disk reaches it unless the record says it was made from exactly these wasm bytes by an
//! engine with exactly these settings, and the artifact's own SHA-256 matches the record.
//! The artifact is read once into memory, checked, and deserialised from that same memory,
//! so the file cannot change between the check and the load. This module never compiles.
//!
//! The record guards against corruption, staleness, another engine's output and another
//! module's artifact under the expected name; someone who can write both files can also
//! write a matching record, so the folder must still be private (see `cache`).

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// Largest integrity record read (it holds three hex digests).
const MAX_RECORD: u64 = 4096;

/// What an artifact was made from, written beside it as `<artifact>.integrity` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// SHA-256 of the `.wasm` bytes it was compiled from.
    pub module_sha256: String,
    /// SHA-256 of the artifact file.
    pub artifact_sha256: String,
    /// The engine's key ([`engine_key`]): version and settings that make artifacts compatible.
    pub engine: String,
}

/// Why an artifact on disk was not used; each is logged, then the module is compiled.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("no integrity record at {0}")]
    NoRecord(PathBuf),
    #[error("unreadable integrity record: {0}")]
    BadRecord(String),
    #[error("made by another engine build or settings")]
    OtherEngine,
    #[error("made from another module (stale or foreign artifact)")]
    OtherModule,
    #[error("its digest does not match the record (truncated or corrupted)")]
    Corrupted,
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
}

/// Hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Everything in the engine that makes an artifact incompatible (wasmtime version, target,
/// settings), and this host's version, as hex.
pub fn engine_key(engine: &Engine) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = Sha256::new();
    h.update(engine_hash.finish().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    hex(&h.finalize())
}

/// Where the record of `artifact` lives.
pub fn record_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".integrity");
    PathBuf::from(name)
}

/// Reads `artifact` and returns its bytes if its record vouches for them: made from
/// `module` by `engine`, intact.
pub fn read_verified(engine: &Engine, module: &[u8], artifact: &Path) -> Result<Vec<u8>, Refused> {
    let record_file = record_path(artifact);
    let record = match read_record(&record_file) {
        Ok(r) => r,
        Err(Refused::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refused::NoRecord(record_file));
        }
        Err(e) => return Err(e),
    };
    if record.engine != engine_key(engine) {
        return Err(Refused::OtherEngine);
    }
    if record.module_sha256 != digest(module) {
        return Err(Refused::OtherModule);
    }
    let bytes = std::fs::read(artifact)?;
    if digest(&bytes) != record.artifact_sha256 {
        return Err(Refused::Corrupted);
    }
    Ok(bytes)
}

fn read_record(path: &Path) -> Result<Record, Refused> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_RECORD)
        .read_to_string(&mut text)
        .map_err(|e| Refused::BadRecord(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| Refused::BadRecord(e.to_string()))
}

/// Writes `artifact` (made from `module` by `engine`) and its record, each atomically
/// (temp file + rename), the record last so that a reader never finds a record for an
/// artifact not yet complete. `mode` is the files' permissions.
pub fn write(
    engine: &Engine,
    module: &[u8],
    artifact: &[u8],
    path: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let record = Record {
        module_sha256: digest(module),
        artifact_sha256: digest(artifact),
        engine: engine_key(engine),
    };
    let record_file = record_path(path);
    // An old record must not vouch for a half-replaced artifact.
    match std::fs::remove_file(&record_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    write_atomic(path, artifact, mode)?;
    write_atomic(&record_file, &serde_json::to_vec_pretty(&record)?, mode)?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
