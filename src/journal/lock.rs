//! One owner per data directory: an exclusive `flock` on `DIR/lock`, held
//! for as long as the server runs.
//!
//! `flock` locks belong to the open file description, so the lock ends
//! with the process however it ends (a `SIGKILL` included): no stale lock
//! file to clean up after a crash. `LOCK_NB` makes a second server fail at
//! once instead of waiting for the first to exit.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The held lock; dropping it closes the file, which releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`, or says why not: another server holds it, or the
    /// directory cannot be opened.
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock only takes a descriptor we own and flags.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                format!(
                    "data directory {} is in use by another event-syncer (it holds the flock on {})",
                    dir.display(),
                    path.display()
                )
            } else {
                format!("cannot lock {}: {e}", path.display())
            });
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_goes() {
        let dir = std::env::temp_dir().join(format!("es-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let first = DirLock::acquire(&dir).expect("first lock");
        let second = DirLock::acquire(&dir);
        assert!(
            matches!(&second, Err(m) if m.contains("in use")),
            "{second:?}"
        );
        drop(first);
        assert!(DirLock::acquire(&dir).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
