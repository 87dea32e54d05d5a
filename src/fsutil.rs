//! File helpers shared by checkpoints, caches, readers and reports: atomic
//! writes, bounded reads of regular files only, and the run-folder lock.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The path as the user should see it in an error: absolute, so that a message
/// is unambiguous whatever folder it is read from.
pub fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// An I/O error on `path`, naming its full path.
pub fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: shown(path),
        source,
    }
}

/// Opens `path` for reading if it is a regular file (following links). A FIFO,
/// a device such as /dev/zero or a folder would hang or never end: refused.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a pipe, socket or device)"
        };
        return Err(Error::Io {
            path: shown(path),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("is {kind}; give the path of a regular file"),
            ),
        });
    }
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    Ok((f, meta.len()))
}

/// The whole of a regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    if len > max {
        return Err(Error::Io {
            path: shown(path),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("is {len} bytes, more than the {max} bytes such a file may have"),
            ),
        });
    }
    let mut out = Vec::new();
    // `take` guards against a file that grows while it is read.
    f.take(max)
        .read_to_end(&mut out)
        .map_err(|e| io_error(path, e))?;
    Ok(out)
}

/// A regular text file of at most `max` bytes, as UTF-8.
pub fn read_text(path: &Path, max: u64) -> Result<String> {
    String::from_utf8(read_regular(path, max)?).map_err(|_| Error::Io {
        path: shown(path),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text"),
    })
}

/// Writes `data` to `path` atomically: into a temporary file in the same folder,
/// flushed to disk, then renamed over `path`. Readers see the old file or the new
/// one, never a torn mix; on error (a full disk) the old file is left untouched.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let io = |source| io_error(path, source);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    // Unique per call, not only per process: threads of one process may
    // write one path at once, and a shared temporary would be truncated by
    // one writer under another (a mixed file) or renamed away from it.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".{file_name}{TMP_MARK}{}-{seq}",
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the folder is synced.
        if let Some(d) = dir {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// What `write_atomic` puts in its temporary names (before the process id
/// and the call's sequence number, "<pid>-<seq>").
const TMP_MARK: &str = ".tmp";

/// Whether `tail` (what follows TMP_MARK) is a temporary's "<pid>" or
/// "<pid>-<seq>" (older builds wrote the first).
fn is_temp_tail(tail: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match tail.split_once('-') {
        Some((pid, seq)) => digits(pid) && digits(seq),
        None => digits(tail),
    }
}

/// Removes the temporary files that `write_atomic` left in `dir` when its
/// process was killed. Call only while holding the folder's lock.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with('.')
            && name
                .rsplit_once(TMP_MARK)
                .is_some_and(|(_, tail)| is_temp_tail(tail));
        if stale && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path()).map_err(|err| io_error(&e.path(), err))?;
            n += 1;
        }
    }
    Ok(n)
}

/// An exclusive lock on a run folder, held while the value lives. The operating
/// system drops it when the process ends, even by kill -9, so a stale lock never
/// blocks a later run.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
    /// Whether `acquire` made the folder.
    created: bool,
}

impl DirLock {
    pub const FILE: &'static str = ".lock";

    /// Locks `dir` (creating it), or fails at once naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Io {
                path: shown(dir),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "is a file, not a folder: an output folder is needed here",
                ),
            });
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Busy {
                    path: shown(dir),
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        let who = format!("pid {} ({})", std::process::id(), command_line());
        let _ = file.set_len(0);
        let _ = file.write_all(who.as_bytes());
        let _ = file.sync_all();
        Ok(DirLock {
            _file: file,
            path,
            created,
        })
    }

    /// Removes the folder again if this lock made it and nothing else was
    /// written there: a refused run leaves no trace.
    pub fn discard_if_unused(self) {
        if let (true, Some(dir)) = (self.created, self.path.parent()) {
            let _ = std::fs::remove_file(&self.path);
            // Fails, harmlessly, unless the folder is empty.
            let _ = std::fs::remove_dir(dir);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this lock made its folder (a fresh run).
    pub fn created(&self) -> bool {
        self.created
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `base` if nothing is there yet, else the first of `base-2`, `base-3`, ... that
/// does not exist: a default output folder never lands on an earlier run.
pub fn fresh_dir(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    (2..)
        .map(|i| base.with_file_name(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .expect("an unbounded range has a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("condenser-fsutil-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tmpdir("atomic");
        let p = dir.join("sub").join("x.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left behind: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Threads of one process (tests, a pipeline cache saved by each GPU
    /// handle) may write one path at once: every write succeeds and the file
    /// ends whole, one writer's bytes, with no temporary left.
    #[test]
    fn concurrent_atomic_writes_to_one_path_stay_whole() {
        let dir = tmpdir("concurrent");
        let p = dir.join("x.bin");
        let payloads: Vec<Vec<u8>> = (0..8u8)
            .map(|i| vec![i; 1000 + 7919 * i as usize])
            .collect();
        std::thread::scope(|s| {
            for data in &payloads {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(p, data).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&p).unwrap();
        assert!(
            payloads.contains(&got),
            "a mixed file of {} bytes",
            got.len()
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary left behind"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_reports_unwritable_path() {
        let err = write_atomic(Path::new("/proc/condenser-cannot/x"), b"a").unwrap_err();
        assert!(err.to_string().contains("/proc/condenser-cannot"), "{err}");
    }

    #[test]
    fn stale_temps_go_and_other_files_stay() {
        let dir = tmpdir("stale");
        std::fs::create_dir_all(&dir).unwrap();
        for n in [
            ".checkpoint.safetensors.tmp123",
            ".checkpoint.safetensors.tmp123-45",
            "keep.tmp",
            ".x.tmpabc",
            ".x.tmp12-",
            ".x.tmp-3",
            "model.safetensors",
        ] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&dir).unwrap(), 2);
        assert!(!dir.join(".checkpoint.safetensors.tmp123").exists());
        assert!(!dir.join(".checkpoint.safetensors.tmp123-45").exists());
        for keep in ["keep.tmp", ".x.tmpabc", ".x.tmp12-", ".x.tmp-3"] {
            assert!(dir.join(keep).exists(), "{keep}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_regular_files_are_refused_and_sizes_bounded() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("not a regular file"),
            "{e}"
        );
        let e = read_regular(Path::new("/tmp"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a folder"), "{e}");
        let dir = tmpdir("bounded");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big"), vec![0u8; 100]).unwrap();
        let e = read_regular(&dir.join("big"), 10).unwrap_err().to_string();
        assert!(e.contains("100 bytes"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_locked_folder_refuses_a_second_lock_and_frees_on_drop() {
        let dir = tmpdir("lock");
        let a = DirLock::acquire(&dir).unwrap();
        let e = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            e.contains("in use") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(a);
        DirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fresh_dir_never_names_an_existing_folder() {
        let dir = tmpdir("fresh");
        let base = dir.join("run");
        assert_eq!(fresh_dir(&base), base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(dir.join("run-2")).unwrap();
        assert_eq!(fresh_dir(&base), dir.join("run-3"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
