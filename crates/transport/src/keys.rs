//! CURVE keys in files.
//!
//! A key directory (mode 0700) holds two certificates, each as a public file
//! and a secret file in the ZPL format that pyzmq's `zmq.auth` reads and
//! writes, so a Python client can load them with
//! `zmq.auth.load_certificate`:
//!
//! - `server.key` / `server.key_secret`: the interchange (CURVE server);
//! - `client.key` / `client.key_secret`: shared by pool-managers and clients.
//!
//! The interchange admits a peer only if its public key is in one of the
//! `*.key` files of the directory: to admit another client, drop its public
//! certificate there.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Names of the certificate files inside a key directory.
pub const SERVER_PUBLIC: &str = "server.key";
pub const SERVER_SECRET: &str = "server.key_secret";
pub const CLIENT_PUBLIC: &str = "client.key";
pub const CLIENT_SECRET: &str = "client.key_secret";

/// Problems with key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key directory {path} has mode {mode:04o}, so other users can reach it; \
         it must be accessible to its owner only: run `chmod 700 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("key directory {path} does not exist; create one with `rhtex keygen {path}`")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no valid {what} (a 40-character Z85 string in quotes)")]
    BadCertificate { path: PathBuf, what: &'static str },
    #[error("{path} already holds keys; remove them first or choose another directory")]
    AlreadyExists { path: PathBuf },
    #[error("cannot generate a CURVE key pair: {0}")]
    Generate(String),
}

/// A CURVE key pair, both halves as 32 raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub public: [u8; 32],
    pub secret: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &z85(&self.public))
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl KeyPair {
    pub fn generate() -> Result<Self, KeyError> {
        let pair =
            zmq::CurveKeyPair::new().map_err(|error| KeyError::Generate(error.to_string()))?;
        Ok(Self {
            public: pair.public_key,
            secret: pair.secret_key,
        })
    }

    /// The public key in Z85 text.
    pub fn public_z85(&self) -> String {
        z85(&self.public)
    }
}

/// Z85 text of a 32-byte key.
pub fn z85(key: &[u8; 32]) -> String {
    // 32 bytes is a multiple of 4, the only condition z85_encode checks.
    zmq::z85_encode(key).unwrap_or_default()
}

/// What the interchange needs: its key pair and the public keys it admits.
#[derive(Clone, Debug)]
pub struct ServerKeys {
    pub server: KeyPair,
    pub allowed_clients: HashSet<[u8; 32]>,
}

/// What a pool-manager or client needs: the server's public key and its
/// own key pair.
#[derive(Clone, Debug)]
pub struct ClientKeys {
    pub server_public: [u8; 32],
    pub client: KeyPair,
}

/// Checks that `dir` exists and is reachable by its owner only.
pub fn check_directory(dir: &Path) -> Result<(), KeyError> {
    let metadata = match fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing {
                path: dir.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(KeyError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes a fresh server and client key pair into `dir`, creating it with
/// mode 0700. Refuses to overwrite existing keys.
pub fn keygen(dir: &Path) -> Result<(), KeyError> {
    let write_error = |source| KeyError::Write {
        path: dir.to_path_buf(),
        source,
    };
    if dir.exists() {
        if dir.join(SERVER_SECRET).exists() || dir.join(CLIENT_SECRET).exists() {
            return Err(KeyError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_error)?;
    } else {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_error)?;
        // DirBuilder's mode is filtered by the umask; make it exact.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_error)?;
    }
    for name in ["server", "client"] {
        let pair = KeyPair::generate()?;
        write_certificate(&dir.join(format!("{name}.key")), &pair, false)?;
        write_certificate(&dir.join(format!("{name}.key_secret")), &pair, true)?;
    }
    Ok(())
}

fn write_certificate(path: &Path, pair: &KeyPair, with_secret: bool) -> Result<(), KeyError> {
    let kind = if with_secret { "Secret" } else { "Public" };
    let mut text = format!(
        "#   ****  Generated by rhtex keygen  ****\n\
         #   ZeroMQ CURVE **{kind}** Certificate\n"
    );
    if with_secret {
        text.push_str("#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n");
    } else {
        text.push_str("#   Exchange securely, or use a secure mechanism to verify the contents\n#   of this file after exchange.\n");
    }
    text.push_str("\nmetadata\ncurve\n");
    text.push_str(&format!("    public-key = \"{}\"\n", z85(&pair.public)));
    if with_secret {
        text.push_str(&format!("    secret-key = \"{}\"\n", z85(&pair.secret)));
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a key (`public-key` or `secret-key`) from a ZPL certificate text.
fn parse_key(text: &str, name: &str) -> Option<[u8; 32]> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(name)?.trim_start();
        let value = rest.strip_prefix('=')?.trim();
        let value = value.trim_matches('"').trim_matches('\'');
        if value.len() != 40 {
            return None;
        }
        let bytes = zmq::z85_decode(value).ok()?;
        bytes.try_into().ok()
    })
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(path: &Path) -> Result<KeyPair, KeyError> {
    let text = read_text(path)?;
    let public = parse_key(&text, "public-key").ok_or(KeyError::BadCertificate {
        path: path.to_path_buf(),
        what: "public-key",
    })?;
    let secret = parse_key(&text, "secret-key").ok_or(KeyError::BadCertificate {
        path: path.to_path_buf(),
        what: "secret-key",
    })?;
    Ok(KeyPair { public, secret })
}

fn read_public(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = read_text(path)?;
    parse_key(&text, "public-key").ok_or(KeyError::BadCertificate {
        path: path.to_path_buf(),
        what: "public-key",
    })
}

/// Loads the interchange's keys: its own pair and every public key in the
/// directory's `*.key` files (except its own) as admitted clients.
pub fn load_server_keys(dir: &Path) -> Result<ServerKeys, KeyError> {
    check_directory(dir)?;
    let server = read_pair(&dir.join(SERVER_SECRET))?;
    let mut allowed_clients = HashSet::new();
    let entries = fs::read_dir(dir).map_err(|source| KeyError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|ext| ext.to_str()) == Some("key")
            && path.file_name().and_then(|name| name.to_str()) != Some(SERVER_PUBLIC)
        {
            allowed_clients.insert(read_public(&path)?);
        }
    }
    Ok(ServerKeys {
        server,
        allowed_clients,
    })
}

/// Loads a pool-manager's or client's keys: the server's public key and the
/// client key pair.
pub fn load_client_keys(dir: &Path) -> Result<ClientKeys, KeyError> {
    check_directory(dir)?;
    Ok(ClientKeys {
        server_public: read_public(&dir.join(SERVER_PUBLIC))?,
        client: read_pair(&dir.join(CLIENT_SECRET))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_then_load() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("keys");
        keygen(&dir).expect("keygen");
        let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let server = load_server_keys(&dir).expect("server keys");
        let client = load_client_keys(&dir).expect("client keys");
        assert_eq!(client.server_public, server.server.public);
        assert!(server.allowed_clients.contains(&client.client.public));
        assert!(!server.allowed_clients.contains(&server.server.public));
        assert!(matches!(keygen(&dir), Err(KeyError::AlreadyExists { .. })));
    }

    #[test]
    fn open_directory_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("keys");
        keygen(&dir).expect("keygen");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let error = load_server_keys(&dir).expect_err("must refuse");
        assert!(error.to_string().contains("mode 0755"), "{error}");
        assert!(error.to_string().contains("chmod 700"), "{error}");
    }

    #[test]
    fn missing_directory_names_keygen() {
        let error = load_client_keys(Path::new("/nonexistent/rhtex-keys")).expect_err("missing");
        assert!(error.to_string().contains("rhtex keygen"), "{error}");
    }

    #[test]
    fn parses_pyzmq_style_certificate() {
        let pair = KeyPair::generate().expect("pair");
        let text = format!(
            "metadata\ncurve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
            z85(&pair.public),
            z85(&pair.secret)
        );
        assert_eq!(parse_key(&text, "public-key"), Some(pair.public));
        assert_eq!(parse_key(&text, "secret-key"), Some(pair.secret));
        assert_eq!(parse_key("public-key = \"short\"", "public-key"), None);
    }
}
