//! The daemon's durable state: the core rebuilt from the run directory's
//! journal at start, each turn's journal records handed to the writer
//! thread ([`crate::store::writer`]), the core's outputs held until the
//! records queued before them are on disk, and compaction when the journal
//! has grown. With `--no-journal` the outputs pass straight through.

use crate::config::Config;
use crate::daemon::DaemonError;
use crate::store::writer::{Gate, JournalWriter};
use crate::store::{Loaded, Store, StoreError};
use interchange_core::{Core, CoreConfig, Output, Recovery};
use seam::Time;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Instant;

/// A segment with fewer records than this is never compacted at start.
const MIN_RECORDS_TO_COMPACT_AT_START: usize = 100_000;

/// The journal as the poll loop sees it.
#[derive(Debug)]
pub struct Durable {
    writer: Option<JournalWriter>,
    gate: Gate<Output>,
}

impl Durable {
    /// The core: rebuilt from the journal in the run directory (after
    /// discarding it with `--fresh`), or without a journal
    /// (`--no-journal`). Logs what was recovered and how long it took.
    pub fn start(
        config: &Config,
        core_config: CoreConfig,
        now: Time,
    ) -> Result<(Core, Durable), DaemonError> {
        if !config.journal {
            tracing::info!(
                "journal off (--no-journal): queued tasks and results do not survive a restart"
            );
            let durable = Durable {
                writer: None,
                gate: Gate::default(),
            };
            return Ok((Core::new(core_config, now), durable));
        }
        let started = Instant::now();
        let dir = config.run_dir.join("journal");
        if config.fresh {
            let n_segments = Store::discard(&dir).map_err(DaemonError::JournalSetup)?;
            tracing::info!(
                journal = %dir.display(),
                n_segments,
                "starting fresh (--fresh): the journal's tasks and results were discarded"
            );
        }
        let mut loaded = Store::load(&dir).map_err(DaemonError::JournalSetup)?;
        let load_seconds = started.elapsed().as_secs_f64();
        if let Some(torn) = &loaded.torn {
            tracing::warn!(
                path = %torn.path.display(),
                offset = torn.offset,
                n_bytes = torn.n_bytes,
                "journal: dropped a torn or damaged tail (records being written when the interchange stopped)"
            );
        }
        let records = std::mem::take(&mut loaded.records);
        let n_records = records.len();
        let (mut core, recovery) = Core::recover(core_config, now, records);
        let replay_seconds = started.elapsed().as_secs_f64() - load_seconds;
        let store = open_store(&dir, &loaded, n_records, &recovery, &mut core)
            .map_err(DaemonError::JournalSetup)?
            .with_compact_min_bytes(config.journal_compact_bytes);
        if recovery.n_skipped > 0 {
            tracing::warn!(
                n_skipped = recovery.n_skipped,
                "journal: records that did not fit the state before them were skipped"
            );
        }
        if loaded.segment.is_some() {
            tracing::info!(
                journal = %store.path().display(),
                n_records = recovery.n_records,
                n_queued = recovery.n_queued,
                n_running = recovery.n_running,
                n_managers = recovery.n_managers,
                n_finished = recovery.n_finished,
                n_blocks = recovery.n_blocks,
                load_seconds,
                replay_seconds,
                seconds = started.elapsed().as_secs_f64(),
                "resumed from the journal"
            );
        } else {
            tracing::info!(journal = %store.path().display(), "journal started (nothing to resume)");
        }
        let writer = JournalWriter::start(store, 0).map_err(DaemonError::JournalSetup)?;
        let durable = Durable {
            writer: Some(writer),
            gate: Gate::default(),
        };
        Ok((core, durable))
    }

    /// The fd that becomes readable when held outputs may go.
    pub fn wake_fd(&self) -> Option<RawFd> {
        self.writer.as_ref().map(JournalWriter::wake_fd)
    }

    pub fn take_wake(&mut self) {
        if let Some(writer) = &mut self.writer {
            writer.take_wake();
        }
    }

    /// Takes the core's journal records (to the writer, as one batch) and
    /// its outputs (behind them).
    pub fn collect(&mut self, core: &mut Core) -> Result<(), StoreError> {
        let after = match &mut self.writer {
            None => 0,
            Some(writer) => {
                let mut frames = Vec::new();
                core.take_journal(&mut frames);
                writer.submit(frames)?
            }
        };
        while let Some(output) = core.poll_output() {
            self.gate.push(after, output);
        }
        Ok(())
    }

    /// The next output that may be performed now.
    pub fn next_output(&mut self) -> Result<Option<Output>, StoreError> {
        let durable = match &self.writer {
            None => u64::MAX,
            Some(writer) => writer.durable()?,
        };
        Ok(self.gate.pop(durable))
    }

    /// Whether no output is held.
    pub fn is_idle(&self) -> bool {
        self.gate.is_empty()
    }

    /// Waits until everything submitted is on disk.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        match &mut self.writer {
            None => Ok(()),
            Some(writer) => writer.flush(),
        }
    }

    /// Compacts the journal if the writer says it has grown enough: the
    /// writer is stopped (everything submitted is then on disk), the core's
    /// snapshot becomes the new segment, and a new writer goes on. Call it
    /// only with the core's records collected.
    pub fn compact_if_grown(&mut self, core: &mut Core) -> Result<(), StoreError> {
        let Some(writer) = self.writer.take_if(|writer| writer.wants_compaction()) else {
            return Ok(());
        };
        let started = Instant::now();
        let after = writer.submitted();
        let mut store = writer.stop()?;
        let n_bytes_before = store.n_bytes();
        store.compact(|sink| core.journal_snapshot(sink))?;
        tracing::info!(
            n_bytes_before,
            n_bytes = store.n_bytes(),
            seconds = started.elapsed().as_secs_f64(),
            "journal compacted"
        );
        self.writer = Some(JournalWriter::start(store, after)?);
        Ok(())
    }
}

/// The store to go on with after a recovery: the loaded segment itself
/// (its torn tail cut off), unless most of its records are obsolete, when
/// the recovered core's snapshot starts a new segment.
fn open_store(
    dir: &Path,
    loaded: &Loaded,
    n_records: usize,
    recovery: &Recovery,
    core: &mut Core,
) -> Result<Store, StoreError> {
    let n_live =
        recovery.n_queued + recovery.n_finished + 2 * recovery.n_running + recovery.n_managers;
    match loaded.segment {
        Some(segment) if n_records < MIN_RECORDS_TO_COMPACT_AT_START.max(2 * n_live) => {
            // What a snapshot of the live records would take, about.
            let snapshot_bytes = loaded.n_bytes * n_live as u64 / n_records.max(1) as u64;
            Store::reopen(dir, segment, loaded.n_bytes, snapshot_bytes)
        }
        after => Store::create(dir, after, |sink| core.journal_snapshot(sink)),
    }
}
