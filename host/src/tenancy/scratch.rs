//! The writable scratch folder of one execution environment: what a Lambda function expects
//! at `/tmp`. A native environment gets it as `TMPDIR`, a WASI environment as its `/tmp`
//! preopen. Private to the host's user (mode 0700), emptied whenever the environment is
//! reset, removed with the host. Plain file operations; it decides nothing about when.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One environment's scratch folder; removed on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates the scratch folder `name` under the host's own folder in the system's temp
    /// folder (`<tmp>/aws-custom-runtime-<pid>/`, both 0700); an old one of that name is
    /// emptied.
    pub fn create(name: &str) -> io::Result<Scratch> {
        let root = std::env::temp_dir().join(format!("aws-custom-runtime-{}", std::process::id()));
        private_dir(&root)?;
        let path = root.join(name);
        private_dir(&path)?;
        let scratch = Scratch { path };
        scratch.clear()?;
        Ok(scratch)
    }

    /// No folder at all, where the host can make none (a read-only root file system without
    /// a writable temp folder): the guest then has no `/tmp`, and metering finds nothing.
    pub fn none() -> Scratch {
        Scratch {
            path: std::path::PathBuf::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes everything in the folder (the folder stays, still 0700).
    pub fn clear(&self) -> io::Result<()> {
        clear(&self.path)
    }

    /// [`Scratch::clear`] on a blocking thread: a function may have left many files, and an
    /// async worker must not wait on the file system for them.
    pub async fn clear_off_thread(&self) -> io::Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || clear(&path))
            .await
            .map_err(io::Error::other)?
    }

    /// Empties the folder of a WASI environment, whose guest cannot change the folder's mode:
    /// an empty folder costs one directory read on this thread, one that holds anything is
    /// emptied on a blocking thread.
    pub async fn empty(&self) -> io::Result<()> {
        if std::fs::read_dir(&self.path)?.next().is_none() {
            return Ok(());
        }
        self.clear_off_thread().await
    }

    /// Bytes the folder takes on disk (allocated blocks, so a sparse file counts what it
    /// uses), plus a block per entry so that empty files are not free.
    pub fn usage(&self) -> u64 {
        usage(&self.path)
    }
}

fn clear(path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        // Never follows a symlink the function left: it is removed, not its target.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    private_dir(path)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        if let Some(root) = self.path.parent() {
            // Only once every environment's folder is gone.
            let _ = std::fs::remove_dir(root);
        }
    }
}

fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(io::Error::other(format!(
                    "{} exists and is not a folder of this user",
                    path.display()
                )));
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

fn usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += (meta.blocks() * 512).max(512);
        if meta.is_dir() {
            total += usage(&entry.path());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[tokio::test]
    async fn empty_removes_what_a_guest_left_and_keeps_the_folder() {
        let s = Scratch::create(&format!("empty-test-{}", std::process::id())).unwrap();
        s.empty().await.unwrap();
        std::fs::create_dir_all(s.path().join("a/b")).unwrap();
        std::fs::write(s.path().join("a/b/f"), b"x").unwrap();
        std::fs::write(s.path().join("g"), b"y").unwrap();
        s.empty().await.unwrap();
        assert!(s.path().is_dir());
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 0);
    }
}
