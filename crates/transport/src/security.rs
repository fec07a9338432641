//! Whether a socket is encrypted, and with what: one [`Security`] for every
//! stage, from a configuration (the key directory) to a socket (loaded
//! keys).

use crate::keys::{self, ClientKeys, ClientName, ServerKeys};
use crate::sockets::{check_curve, TransportError};
use std::path::{Path, PathBuf};

/// Encryption of a connection. `Keys` is what CURVE needs at this stage:
/// the key directory in a configuration ([`Security`] itself), the loaded
/// keys on a listening socket ([`ServerSecurity`]) or a connecting one
/// ([`ClientSecurity`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security<Keys = PathBuf> {
    /// No encryption, no authentication (`--insecure`).
    Insecure,
    /// CURVE with these keys (the default).
    Curve(Keys),
}

/// Encryption on a listening (server) socket: the interchange's.
pub type ServerSecurity = Security<ServerKeys>;

/// Encryption on a connecting (client) socket: a pool-manager's or a
/// client's.
pub type ClientSecurity = Security<ClientKeys>;

impl Security<PathBuf> {
    /// The key directory; `None` when insecure.
    pub fn keys_dir(&self) -> Option<&Path> {
        match self {
            Security::Insecure => None,
            Security::Curve(keys_dir) => Some(keys_dir),
        }
    }

    /// The flags that give this choice to an rhtex program: `--keys-dir DIR`
    /// or `--insecure`.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Security::Curve(keys_dir) => {
                vec!["--keys-dir".to_owned(), keys_dir.display().to_string()]
            }
            Security::Insecure => vec!["--insecure".to_owned()],
        }
    }

    /// For a pool-manager's socket: checks that libzmq has CURVE and loads
    /// the manager identity of the directory.
    pub fn manager_security(&self) -> Result<ClientSecurity, TransportError> {
        match self {
            Security::Insecure => Ok(Security::Insecure),
            Security::Curve(keys_dir) => {
                check_curve()?;
                Ok(Security::Curve(keys::load_manager_keys(keys_dir)?))
            }
        }
    }
}

impl ClientSecurity {
    /// CURVE with the default client identity of a key directory (libzmq
    /// must have CURVE).
    pub fn from_keys_dir(keys_dir: &Path) -> Result<Self, TransportError> {
        Self::from_keys_dir_as(keys_dir, &ClientName::default())
    }

    /// CURVE with client identity `name` of a key directory.
    pub fn from_keys_dir_as(keys_dir: &Path, name: &ClientName) -> Result<Self, TransportError> {
        check_curve()?;
        Ok(Security::Curve(keys::load_client_keys_as(keys_dir, name)?))
    }
}
