//! The store against real files: what is appended is read back; a torn or
//! damaged tail is dropped and named; compaction keeps one segment; a
//! journal of another version or a file that is not one is refused.

use super::*;
use protocol::journal::FRAME_HEADER_BYTES;
use protocol::{TaskId, TaskResult, TaskState};
use std::io::{Seek, SeekFrom};

fn finished(n: u128) -> JournalRecord {
    JournalRecord::Finished {
        result: TaskResult::new(TaskId::from_u128(n), TaskState::Completed),
        owner: Some("default".to_owned()),
    }
}

fn records(range: std::ops::Range<u128>) -> Vec<JournalRecord> {
    range.map(finished).collect()
}

/// The records of `range`, framed as the loop hands them to the writer.
fn framed(range: std::ops::Range<u128>) -> Vec<u8> {
    let mut frames = Vec::new();
    for record in records(range) {
        frame(&mut frames, &record);
    }
    frames
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// A journal with snapshot `0..2` and two appended turns, `2..5` and `5..7`.
fn written(dir: &Path) -> Store {
    let mut store = Store::create(dir, None, |sink| {
        for record in records(0..2) {
            sink(record);
        }
    })
    .expect("create");
    assert_eq!(store.append(records(2..5)).expect("append"), 3);
    assert_eq!(store.append(Vec::new()).expect("append nothing"), 0);
    assert_eq!(store.append(records(5..7)).expect("append"), 2);
    store
}

/// The file of a journal [`written`] in `dir`, closed.
fn written_and_closed(dir: &Path) -> PathBuf {
    written(dir).path().to_path_buf()
}

#[test]
fn appended_records_are_read_back_in_order() {
    let dir = temp_dir();
    let store = written(dir.path());
    let loaded = Store::load(dir.path()).expect("load");
    assert_eq!(loaded.records, records(0..7));
    assert_eq!((loaded.torn, loaded.segment), (None, Some(1)));
    assert_eq!(
        store.n_bytes(),
        std::fs::metadata(store.path()).expect("size").len()
    );
}

#[test]
fn an_empty_directory_has_no_journal() {
    let dir = temp_dir();
    let loaded = Store::load(&dir.path().join("missing")).expect("load");
    assert!(loaded.records.is_empty());
    assert_eq!((loaded.torn, loaded.segment), (None, None));
}

#[test]
fn a_torn_tail_is_dropped_and_named_at_every_cut() {
    let dir = temp_dir();
    let path = written_and_closed(dir.path());
    let whole = std::fs::read(&path).expect("read");
    let last_frame =
        whole.len() - (FRAME_HEADER_BYTES + protocol::encode_compact(&finished(6)).len());
    // Cut anywhere inside the last frame: the six records before it stay.
    for cut in last_frame..whole.len() {
        std::fs::write(&path, &whole[..cut]).expect("write");
        let loaded = Store::load(dir.path()).expect("load");
        assert_eq!(loaded.records, records(0..6), "cut at {cut}");
        let expected = (cut > last_frame).then(|| TornTail {
            path: path.clone(),
            offset: last_frame as u64,
            n_bytes: (cut - last_frame) as u64,
        });
        assert_eq!(loaded.torn, expected, "cut at {cut}");
    }
}

#[test]
fn a_crc_mismatch_drops_that_frame_and_the_rest() {
    let dir = temp_dir();
    let path = written_and_closed(dir.path());
    let one_frame = FRAME_HEADER_BYTES + protocol::encode_compact(&finished(0)).len();
    // Flip a byte in the payload of the fourth frame (record 3).
    let offset = HEADER_BYTES + 3 * one_frame + FRAME_HEADER_BYTES + 2;
    let mut file = OpenOptions::new()
        .write(true)
        .read(true)
        .open(&path)
        .expect("open");
    file.seek(SeekFrom::Start(offset as u64)).expect("seek");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset] ^= 0x55;
    file.write_all(&bytes[offset..=offset]).expect("write");
    drop(file);
    let loaded = Store::load(dir.path()).expect("load");
    assert_eq!(loaded.records, records(0..3));
    let torn = loaded.torn.expect("the damage is reported");
    assert_eq!(torn.offset, (HEADER_BYTES + 3 * one_frame) as u64);
    assert_eq!(torn.path, path);
}

#[test]
fn compaction_starts_a_new_segment_and_removes_the_old() {
    let dir = temp_dir();
    let mut store = written(dir.path());
    let old = store.path().to_path_buf();
    store
        .compact(|sink| {
            for record in records(10..12) {
                sink(record);
            }
        })
        .expect("compact");
    assert!(!old.exists());
    store.append(records(12..13)).expect("append");
    let loaded = Store::load(dir.path()).expect("load");
    assert_eq!(loaded.records, records(10..13));
    assert_eq!(loaded.segment, Some(2));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, vec![segment_name(2)]);
}

#[test]
fn a_left_over_temporary_snapshot_is_ignored() {
    let dir = temp_dir();
    drop(written(dir.path()));
    std::fs::write(
        dir.path().join("segment-00000000000000000002.log.tmp"),
        b"partial",
    )
    .expect("write");
    let loaded = Store::load(dir.path()).expect("load");
    assert_eq!(loaded.records, records(0..7));
}

#[test]
fn another_version_or_a_foreign_file_is_refused_with_a_hint() {
    let dir = temp_dir();
    let path = written_and_closed(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[JOURNAL_MAGIC.len()..HEADER_BYTES].copy_from_slice(&(JOURNAL_VERSION + 1).to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let error = Store::load(dir.path()).expect_err("another version");
    assert!(
        matches!(&error, StoreError::Version { found, .. } if *found == JOURNAL_VERSION + 1),
        "{error}"
    );
    assert!(error.to_string().contains("--fresh"), "{error}");

    std::fs::write(&path, b"hello").expect("write");
    let error = Store::load(dir.path()).expect_err("not a journal");
    assert!(matches!(error, StoreError::NotAJournal { .. }), "{error}");
    assert!(error.to_string().contains("--fresh"), "{error}");

    assert_eq!(Store::discard(dir.path()).expect("discard"), 1);
    assert!(Store::load(dir.path()).expect("load").segment.is_none());
}

#[test]
fn reopening_cuts_a_torn_tail_and_appends_after_it() {
    let dir = temp_dir();
    let path = written_and_closed(dir.path());
    let whole = std::fs::read(&path).expect("read");
    std::fs::write(&path, &whole[..whole.len() - 3]).expect("write");
    let loaded = Store::load(dir.path()).expect("load");
    assert_eq!(loaded.records, records(0..6));
    let segment = loaded.segment.expect("a segment");
    let mut store = Store::reopen(dir.path(), segment, loaded.n_bytes, 0).expect("reopen");
    store.append(records(20..21)).expect("append");
    let loaded = Store::load(dir.path()).expect("load");
    let mut expected = records(0..6);
    expected.extend(records(20..21));
    assert_eq!((loaded.records, loaded.torn), (expected, None));
}

#[test]
fn the_writer_makes_batches_durable_in_order_and_gives_the_store_back() {
    let dir = temp_dir();
    let store = Store::create(dir.path(), None, |_| {}).expect("create");
    let mut writer = writer::JournalWriter::start(store, 7).expect("start");
    assert_eq!(writer.durable().expect("durable"), 7);
    assert_eq!(writer.submit(Vec::new()).expect("nothing"), 7);
    assert_eq!(writer.submit(framed(0..3)).expect("submit"), 8);
    assert_eq!(writer.submit(framed(3..5)).expect("submit"), 9);
    writer.flush().expect("flush");
    assert_eq!(writer.durable().expect("durable"), 9);
    assert_eq!(
        Store::load(dir.path()).expect("load").records,
        records(0..5)
    );
    writer.submit(framed(5..6)).expect("submit");
    let mut store = writer.stop().expect("stop");
    store.append(records(6..7)).expect("append");
    assert_eq!(
        Store::load(dir.path()).expect("load").records,
        records(0..7)
    );
}

#[test]
fn the_gate_holds_items_until_their_batch_is_durable_and_keeps_their_order() {
    let mut gate = writer::Gate::default();
    gate.push(0, "a");
    gate.push(2, "b");
    gate.push(1, "c");
    assert_eq!(gate.pop(0), Some("a"));
    // "c" waits behind "b", whose batch is not durable.
    assert_eq!(gate.pop(1), None);
    assert_eq!(gate.pop(2), Some("b"));
    assert_eq!(gate.pop(2), Some("c"));
    assert!(gate.is_empty());
}
