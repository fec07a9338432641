//! What can happen between a manager and the interchange besides messages:
//! a link that stops carrying anything for a while (a network partition, a
//! stopped process: messages wait, none is lost), a connection that drops
//! and comes back, and an interchange restarted with nothing (stopped by
//! a signal, started again without a journal).

use crate::pair::{Delivery, Pair};
use interchange_core::Core;
use pool_manager_core::LinkStatus;

impl Pair {
    /// From now on, messages between this manager and the interchange are
    /// held back, both ways, until [`Pair::resume_link`].
    pub fn pause_link(&mut self, manager: usize) {
        self.paused.insert(manager);
    }

    /// The held-back messages of this manager are delivered now, in the
    /// order they were sent, and the link carries messages again.
    pub fn resume_link(&mut self, manager: usize) {
        self.paused.remove(&manager);
        let (mine, others): (Vec<Delivery>, Vec<Delivery>) = std::mem::take(&mut self.held_back)
            .into_iter()
            .partition(|delivery| match delivery {
                Delivery::FromManager { manager: m, .. }
                | Delivery::ToManager { manager: m, .. } => *m == manager,
                _ => false,
            });
        self.held_back = others.into();
        for delivery in mine {
            self.post_delivery_now(delivery);
        }
        self.flush();
    }

    /// The manager's connection drops and comes back at once (its link
    /// reports both); messages held back stay held back.
    pub fn reconnect_manager(&mut self, manager: usize) {
        let now = self.now;
        let Some(slot) = self.managers.get_mut(manager) else {
            return;
        };
        slot.core.handle_link(now, LinkStatus::Disconnected);
        slot.core.handle_link(now, LinkStatus::Connected);
        self.drain_manager(manager, false);
        self.flush();
    }

    /// The interchange is replaced by a fresh core that knows nothing (as
    /// after SIGTERM and a start without a journal); every live manager's
    /// connection drops and comes back. Clients must say `hello` again.
    pub fn restart_interchange(&mut self) {
        self.interchange = Core::new(self.config.interchange.clone(), self.now);
        for manager in 0..self.managers.len() {
            self.reconnect_manager(manager);
        }
    }
}
