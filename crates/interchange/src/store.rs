//! The journal store: the interchange's durable state under
//! `<run-dir>/journal/`, as `proto/JOURNAL.md` describes it.
//!
//! A segment file `segment-NNNNNNNNNNNNNNNNNNNN.log` holds a header
//! ([`JOURNAL_MAGIC`], then [`JOURNAL_VERSION`] as a little-endian `u32`)
//! and frames: the payload's length and its CRC-32 (both little-endian
//! `u32`), then the payload, one msgpack-encoded [`JournalRecord`]. Every
//! segment begins with a snapshot of the whole state (written to a `.tmp`
//! file, synced, then renamed into place), so only the newest segment is
//! ever read; the older ones are removed once the newer is in place.
//!
//! - **Group commit**: the records of a turn are framed into one buffer
//!   ([`frame`]) and the writer thread ([`writer`]) writes every buffer
//!   waiting with one `fdatasync` ([`Store::append_frames`]); the daemon
//!   sends no output of that turn before.
//! - **Torn tail**: a kill -9 can only leave the last frame of the newest
//!   segment incomplete; reading stops at the first frame that is short,
//!   fails its CRC or does not decode, and drops the rest with a warning
//!   naming the file and the offset ([`Store::reopen`] cuts it off).
//! - **Compaction**: whenever the segment has grown past
//!   [`COMPACT_MIN_BYTES`] (`journal_compact_mib` in the config) and four times its snapshot, and at start when
//!   most of its records are obsolete, the state is written anew as the
//!   next segment ([`Store::create`], [`Store::compact`]); otherwise a
//!   restart goes on appending to the segment it loaded.

use protocol::{JournalRecord, JOURNAL_MAGIC, JOURNAL_VERSION};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A segment is compacted once it is larger than this (by default)...
pub const COMPACT_MIN_BYTES: u64 = 64 * 1024 * 1024;
/// ...and than this many times the snapshot it began with.
const COMPACT_GROWTH: u64 = 4;

const HEADER_BYTES: usize = JOURNAL_MAGIC.len() + 4;

/// Why the journal cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal {path} has format version {found}, this interchange reads version \
         {JOURNAL_VERSION}; start with --fresh to discard it (its tasks and results are lost)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path} is not an rhtex journal (no journal header); start with --fresh to discard it"
    )]
    NotAJournal { path: PathBuf },
}

impl StoreError {
    /// The file the error is about, and the OS error number, for an I/O
    /// error (`ENOSPC`: 28, a full disk).
    pub fn io_failure(&self) -> Option<(&Path, Option<i32>)> {
        match self {
            StoreError::Io { path, source } => Some((path, source.raw_os_error())),
            StoreError::Version { .. } | StoreError::NotAJournal { .. } => None,
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The end of a segment that was dropped: an incomplete or damaged frame
/// from `offset` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub n_bytes: u64,
}

/// What the newest segment held.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<JournalRecord>,
    pub torn: Option<TornTail>,
    /// The newest segment's number; `None` without any.
    pub segment: Option<u64>,
    /// Its length up to the end of the last whole record.
    pub n_bytes: u64,
}

/// The open journal: the newest segment, appended to.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    segment: u64,
    path: PathBuf,
    file: File,
    /// The segment's size, and its size when its snapshot was written.
    n_bytes: u64,
    snapshot_bytes: u64,
    /// The size below which the segment is not compacted.
    compact_min_bytes: u64,
    /// Frames of the current turn, written at once.
    buffer: Vec<u8>,
}

fn segment_name(segment: u64) -> String {
    format!("segment-{segment:020}.log")
}

/// The numbers of the segment files in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StoreError::io(dir)(error)),
    };
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_prefix("segment-"))
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(number) = number {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Appends one frame holding `record` to `buffer`.
pub fn frame(buffer: &mut Vec<u8>, record: &JournalRecord) {
    protocol::journal::frame(buffer, record);
}

fn header() -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..JOURNAL_MAGIC.len()].copy_from_slice(&JOURNAL_MAGIC);
    header[JOURNAL_MAGIC.len()..].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    header
}

/// Reads a segment's records; stops at the first frame that is short,
/// damaged or undecodable, and says where.
fn read_segment(path: &Path) -> Result<(Vec<JournalRecord>, Option<TornTail>), StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
    if bytes.len() < HEADER_BYTES || bytes[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        return Err(StoreError::NotAJournal {
            path: path.to_path_buf(),
        });
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[JOURNAL_MAGIC.len()..HEADER_BYTES]);
    let found = u32::from_le_bytes(version);
    if found != JOURNAL_VERSION {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut records = Vec::new();
    let mut offset = HEADER_BYTES;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let record = protocol::journal::next_frame(rest).and_then(|(payload, length)| {
            protocol::decode::<JournalRecord>(payload)
                .ok()
                .map(|record| (record, length))
        });
        let Some((record, length)) = record else {
            let torn = TornTail {
                path: path.to_path_buf(),
                offset: offset as u64,
                n_bytes: rest.len() as u64,
            };
            return Ok((records, Some(torn)));
        };
        records.push(record);
        offset += length;
    }
    Ok((records, None))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(StoreError::io(dir))
}

/// Writes a new segment's header and the snapshot `write` gives to
/// `temporary`, synced; gives its length.
fn write_snapshot(
    temporary: &Path,
    write: impl FnOnce(&mut dyn FnMut(JournalRecord)),
) -> Result<u64, StoreError> {
    let file = File::create(temporary).map_err(StoreError::io(temporary))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut failure = writer.write_all(&header()).err();
    let mut n_bytes = HEADER_BYTES as u64;
    let mut buffer = Vec::new();
    write(&mut |record| {
        if failure.is_some() {
            return;
        }
        buffer.clear();
        frame(&mut buffer, &record);
        n_bytes += buffer.len() as u64;
        failure = writer.write_all(&buffer).err();
    });
    if let Some(error) = failure {
        return Err(StoreError::io(temporary)(error));
    }
    let file = writer
        .into_inner()
        .map_err(|error| StoreError::io(temporary)(error.into_error()))?;
    file.sync_all().map_err(StoreError::io(temporary))?;
    Ok(n_bytes)
}

impl Store {
    /// Reads the newest segment of the journal in `dir` (none if `dir` has
    /// no segment). A torn tail is reported in [`Loaded::torn`], not an
    /// error; another journal version or a file that is not a journal is.
    pub fn load(dir: &Path) -> Result<Loaded, StoreError> {
        let Some(&segment) = segments(dir)?.last() else {
            return Ok(Loaded::default());
        };
        let path = dir.join(segment_name(segment));
        let (records, torn) = read_segment(&path)?;
        let n_bytes = match &torn {
            Some(torn) => torn.offset,
            None => std::fs::metadata(&path)
                .map_err(StoreError::io(&path))?
                .len(),
        };
        Ok(Loaded {
            records,
            torn,
            segment: Some(segment),
            n_bytes,
        })
    }

    /// Removes every segment in `dir` (for `--fresh`); gives how many.
    pub fn discard(dir: &Path) -> Result<usize, StoreError> {
        let numbers = segments(dir)?;
        for number in &numbers {
            let path = dir.join(segment_name(*number));
            std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
        Ok(numbers.len())
    }

    /// Starts segment `after + 1` in `dir` with the snapshot `write` gives
    /// (written to a temporary file, synced, renamed into place), removes
    /// the older segments, and opens it for appending.
    pub fn create(
        dir: &Path,
        after: Option<u64>,
        write: impl FnOnce(&mut dyn FnMut(JournalRecord)),
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let segment = after.map_or(1, |number| number + 1);
        let path = dir.join(segment_name(segment));
        let temporary = path.with_extension("log.tmp");
        let n_bytes = match write_snapshot(&temporary, write) {
            Ok(n_bytes) => n_bytes,
            Err(error) => {
                // A half-written snapshot (a full disk) gives its space back.
                let _ = std::fs::remove_file(&temporary);
                return Err(error);
            }
        };
        std::fs::rename(&temporary, &path).map_err(StoreError::io(&path))?;
        sync_dir(dir)?;
        Store::reopen(dir, segment, n_bytes, n_bytes)
    }

    /// Appends to segment `segment` of `dir` as it was loaded: a torn tail
    /// is cut off (at `n_bytes`, synced), and the segment counts as
    /// compacted when it held `snapshot_bytes`.
    pub fn reopen(
        dir: &Path,
        segment: u64,
        n_bytes: u64,
        snapshot_bytes: u64,
    ) -> Result<Store, StoreError> {
        let path = dir.join(segment_name(segment));
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        let length = file.metadata().map_err(StoreError::io(&path))?.len();
        if length != n_bytes {
            file.set_len(n_bytes)
                .and_then(|()| file.sync_all())
                .map_err(StoreError::io(&path))?;
        }
        for older in segments(dir)?
            .into_iter()
            .filter(|number| *number < segment)
        {
            let older = dir.join(segment_name(older));
            std::fs::remove_file(&older).map_err(StoreError::io(&older))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            segment,
            path,
            file,
            n_bytes,
            snapshot_bytes,
            compact_min_bytes: COMPACT_MIN_BYTES,
            buffer: Vec::new(),
        })
    }

    /// Writes `records` with one write and one `fdatasync`; nothing at all
    /// when there are none.
    pub fn append(
        &mut self,
        records: impl IntoIterator<Item = JournalRecord>,
    ) -> Result<usize, StoreError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let mut n_records = 0;
        for record in records {
            frame(&mut buffer, &record);
            n_records += 1;
        }
        let outcome = self.append_frames(&[&buffer]);
        if buffer.capacity() <= 16 << 20 {
            self.buffer = buffer;
        }
        outcome.map(|()| n_records)
    }

    /// Writes frames made by [`frame`] and syncs once; nothing at all when
    /// they are empty.
    pub fn append_frames(&mut self, groups: &[&[u8]]) -> Result<(), StoreError> {
        let n_bytes: usize = groups.iter().map(|group| group.len()).sum();
        if n_bytes == 0 {
            return Ok(());
        }
        for group in groups {
            self.file
                .write_all(group)
                .map_err(StoreError::io(&self.path))?;
        }
        self.file.sync_data().map_err(StoreError::io(&self.path))?;
        self.n_bytes += n_bytes as u64;
        Ok(())
    }

    /// Whether the segment has grown enough to be compacted.
    pub fn should_compact(&self) -> bool {
        self.n_bytes > self.compact_min_bytes
            && self.n_bytes > self.snapshot_bytes.saturating_mul(COMPACT_GROWTH)
    }

    /// Replaces the journal by a new segment holding the snapshot `write`
    /// gives.
    pub fn compact(
        &mut self,
        write: impl FnOnce(&mut dyn FnMut(JournalRecord)),
    ) -> Result<(), StoreError> {
        let compact_min_bytes = self.compact_min_bytes;
        *self = Store::create(&self.dir, Some(self.segment), write)?;
        self.compact_min_bytes = compact_min_bytes;
        Ok(())
    }

    /// Compacts only past `n_bytes` (instead of [`COMPACT_MIN_BYTES`]).
    pub fn with_compact_min_bytes(mut self, n_bytes: u64) -> Store {
        self.compact_min_bytes = n_bytes;
        self
    }

    /// The segment being appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }
}

#[cfg(test)]
mod tests;
pub mod writer;
