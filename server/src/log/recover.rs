//! Recovery on open: a file with a torn or corrupt tail is cut back to the end of its last
//! whole tick, after a copy of the damaged file is kept beside it; corruption followed by valid
//! records is refused unless the operator asks for repair.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::scan::{self, Scan};
use super::{LogError, io};

/// How far recovery may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoverMode {
    /// Cut a torn or corrupt tail; refuse corruption followed by valid records.
    #[default]
    Normal,
    /// Also cut at corruption in the middle of the file, dropping the valid records after it.
    Repair,
}

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The scan of the file as found.
    pub scan: Scan,
    /// Where the file was cut, if it was (the file now ends there).
    pub cut_at: Option<u64>,
    /// The copy of the damaged file, if one was made.
    pub kept_copy: Option<PathBuf>,
}

pub use super::reader::read_all;

/// Scan the file at `path` and make it whole: afterwards it ends at its last whole tick, or
/// with its footer if it was closed cleanly. Nothing is changed on a clean file.
pub fn recover(
    path: &Path,
    mode: RecoverMode,
    max_record_bytes: u32,
) -> Result<Recovery, LogError> {
    let bytes = read_all(path)?;
    let scan = scan::scan(&bytes, max_record_bytes).map_err(|source| LogError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    if scan.is_clean() {
        return Ok(Recovery {
            scan,
            cut_at: None,
            kept_copy: None,
        });
    }
    if let Some(damage) = &scan.damage
        && let Some(resumes_at) = damage.resumes_at
        && mode == RecoverMode::Normal
    {
        return Err(LogError::CorruptMidFile {
            path: path.to_path_buf(),
            offset: damage.offset,
            resumes_at,
            detail: damage.detail.clone(),
            last_tick: scan.last_tick.0,
            last_seq: scan.last_seq.0,
        });
    }
    let copy = keep_copy(path, &bytes)?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("opening for recovery", path))?;
    file.set_len(scan.whole_end)
        .map_err(io("truncating", path))?;
    file.sync_all().map_err(io("syncing", path))?;
    sync_dir(path)?;
    tracing::warn!(
        path = %path.display(),
        cut_at = scan.whole_end,
        dropped_bytes = scan.file_len - scan.whole_end,
        last_tick = scan.last_tick.0,
        damage = scan.damage.as_ref().map(|d| d.detail.as_str()),
        kept_copy = %copy.display(),
        "replay file recovered to its last whole tick"
    );
    Ok(Recovery {
        cut_at: Some(scan.whole_end),
        kept_copy: Some(copy),
        scan,
    })
}

/// Close a file that holds only whole ticks but no footer (a crashed match's, once recovered)
/// with the footer a clean close writes, so that from then on it opens from its header and
/// footer alone instead of being scanned. `scan` is the file's scan; returns whether a footer
/// was written (a file that has one is left alone).
pub fn seal(path: &Path, scan: &Scan) -> Result<bool, LogError> {
    if scan.footer.is_some() {
        return Ok(false);
    }
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io("opening to seal", path))?;
    let len = file
        .metadata()
        .map_err(io("reading metadata of", path))?
        .len();
    if len != scan.whole_end {
        return Err(LogError::Io {
            op: "sealing",
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "the file is {len} bytes but its whole ticks end at offset={}: recover it first",
                scan.whole_end
            )),
        });
    }
    let mut footer = Vec::new();
    super::format::encode_footer(&scan.index(), scan.whole_end, &mut footer);
    file.write_all(&footer)
        .and_then(|()| file.sync_all())
        .map_err(io("writing the footer of", path))?;
    Ok(true)
}

/// Write `bytes` to the first free `<path>.damaged-<n>`.
fn keep_copy(path: &Path, bytes: &[u8]) -> Result<PathBuf, LogError> {
    for n in 1.. {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".damaged-{n}"));
        let copy = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&copy) {
            Ok(mut f) => {
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(io("keeping a copy at", &copy))?;
                return Ok(copy);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("keeping a copy at", &copy)(e)),
        }
    }
    unreachable!("some copy name is free")
}

/// fsync the directory holding `path`, so that a created or truncated file's metadata lasts.
pub fn sync_dir(path: &Path) -> Result<(), LogError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some filesystems refuse to fsync a directory; the data itself is synced.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        Err(e) => Err(io("syncing directory", dir)(e)),
    }
}

/// Remove the footer and trailer of a cleanly closed file so that it can be appended to.
pub fn reopen_for_append(path: &Path, scan: &Scan) -> Result<(), LogError> {
    if scan.footer_offset.is_some() {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io("opening", path))?;
        file.set_len(scan.whole_end)
            .map_err(io("truncating the footer of", path))?;
        file.sync_all().map_err(io("syncing", path))?;
        sync_dir(path)?;
    }
    let _ = fs::metadata(path).map_err(io("checking", path))?;
    Ok(())
}
