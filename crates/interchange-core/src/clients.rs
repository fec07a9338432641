//! The clients that said a valid `hello`. Each is one shared
//! [`ClientRef`], which the tasks it watches hold (in their watchers);
//! a client that leaves is marked gone, so its tasks' results go to no
//! one, without a pass over those tasks.

use crate::interface::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A client that said a valid `hello`, as its tasks' watchers hold it.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) peer: PeerId,
    /// It left (goodbye, refused, or unreachable): it gets no results.
    gone: AtomicBool,
}

impl Client {
    /// Whether it still gets results.
    pub(crate) fn is_here(&self) -> bool {
        !self.gone.load(Ordering::Relaxed)
    }
}

/// A client, shared by the tasks it watches.
pub(crate) type ClientRef = Arc<Client>;

/// The connected clients, by routing id.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    clients: HashMap<PeerId, ClientRef>,
}

impl Clients {
    /// The client said a valid `hello` (again, it may).
    pub(crate) fn welcome(&mut self, peer: &PeerId) {
        if !self.clients.contains_key(peer) {
            let client = Arc::new(Client {
                peer: peer.clone(),
                gone: AtomicBool::new(false),
            });
            self.clients.insert(peer.clone(), client);
        }
    }

    /// The client, if it said a valid `hello`.
    pub(crate) fn get(&self, peer: &PeerId) -> Option<ClientRef> {
        self.clients.get(peer).cloned()
    }

    /// Forgets the client: the tasks it watched no longer send it results.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        if let Some(client) = self.clients.remove(peer) {
            client.gone.store(true, Ordering::Relaxed);
        }
    }
}
