//! Blocks adopted after a restart: the journal's blocks whose jobs may
//! still be alive are taken back as submitted jobs, and the batch system
//! is asked about them at once, instead of submitting new blocks.

use super::{Block, Phase, ProviderCore};
use protocol::{BlockInfo, BlockState};
use seam::Time;

impl ProviderCore {
    /// Takes back the blocks an earlier interchange recorded (`status`'s
    /// view of them) whose jobs were pending, running or serving: each is
    /// waiting for its manager again, and the next tick asks the batch
    /// system about them. Ended, failed and draining blocks are not taken
    /// back (a draining block was being given up). Gives how many.
    pub fn adopt(&mut self, now: Time, blocks: &[BlockInfo]) -> usize {
        let mut n_adopted = 0;
        for info in blocks {
            let alive = matches!(
                info.state,
                BlockState::Pending | BlockState::Running | BlockState::Connected
            );
            if !alive || info.job_id.is_empty() || self.index.contains_key(&info.block_id) {
                continue;
            }
            let key = self.next_block;
            self.next_block += 1;
            tracing::info!(
                block_id = %info.block_id,
                job_id = %info.job_id,
                n_nodes = info.n_nodes,
                "adopted a block of the previous run; asking the batch system about its job"
            );
            self.index.insert(info.block_id.clone(), key);
            self.blocks.insert(
                key,
                Block {
                    block_id: info.block_id.clone(),
                    job_id: Some(info.job_id.clone()),
                    n_nodes: info.n_nodes,
                    submitted_at: now,
                    phase: Phase::Queued,
                    manager_id: None,
                    output_path: info.output_path.clone(),
                    message: None,
                },
            );
            n_adopted += 1;
        }
        if n_adopted > 0 {
            self.changed = true;
            self.next_query = now;
        }
        n_adopted
    }
}
