//! Who may do what, by client identity.
//!
//! A task belongs to the identity that submitted it. Its owner and the
//! admins may watch it, see its status and result, and cancel it; others
//! are refused with an `error` whose message starts with `denied:` and
//! says why. Only admins may hold, release or drain managers or shut the
//! interchange down. The admins are the default client identity, the
//! identities the config lists (`CoreConfig::admins`), and, without
//! authentication (`--insecure`), everyone. `status` shows everyone the
//! counts and the managers, but the id of a task that reserves a manager
//! only to its owner and the admins.

use crate::interface::{Identity, PeerId};
use crate::machine::Core;
use protocol::{TaskId, DEFAULT_CLIENT_IDENTITY, DENIED_PREFIX};

impl Core {
    /// Whether `identity` is an admin.
    pub(crate) fn is_admin(&self, identity: &Identity) -> bool {
        match identity {
            Identity::Unauthenticated => true,
            Identity::Key(name) => {
                name == DEFAULT_CLIENT_IDENTITY || self.config.admins.contains(name)
            }
        }
    }

    /// Whether `identity` may watch, see or cancel the task (an unknown
    /// task has nothing to protect).
    pub(crate) fn may_access(&self, identity: &Identity, task_id: TaskId) -> bool {
        self.is_admin(identity)
            || self
                .tasks
                .owner(task_id)
                .map_or(true, |owner| owner == identity)
    }

    /// The first of `task_ids` that `peer` may not reach, as the reason to
    /// refuse its request to `verb` them.
    pub(crate) fn forbidden_task(
        &self,
        peer: &PeerId,
        task_ids: &[TaskId],
        verb: &str,
    ) -> Option<String> {
        let task_id = task_ids
            .iter()
            .find(|task_id| !self.may_access(&peer.identity, **task_id))?;
        Some(format!(
            "{DENIED_PREFIX} task {task_id} was submitted by another client identity; \
             only its submitter or an admin may {verb} it (this connection is client \
             identity {}); nothing of this request was done",
            peer.identity
        ))
    }

    /// The reason to refuse `peer` an admin command, if it is no admin.
    pub(crate) fn forbidden_command(&self, peer: &PeerId, command: &str) -> Option<String> {
        (!self.is_admin(&peer.identity)).then(|| {
            format!(
                "{DENIED_PREFIX} {command} needs an admin identity and this connection is client \
                 identity {}; the admins are {DEFAULT_CLIENT_IDENTITY} and those the \
                 interchange's config lists in `admins`",
                peer.identity
            )
        })
    }

    /// Refuses a request: an `error` that says why.
    pub(crate) fn deny(&mut self, peer: &PeerId, request_id: u64, message: String) {
        self.n_denied += 1;
        self.request_error(peer, request_id, message);
    }
}
