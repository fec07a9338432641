//! CURVE keys in files: identities and their roles.
//!
//! A key directory (mode 0700) holds certificates in the ZPL format that
//! pyzmq's `zmq.auth` reads and writes, each as a public file `NAME.key`
//! and a secret file `NAME.key_secret` (so a Python program can load them
//! with `zmq.auth.load_certificate`):
//!
//! - `server.key` / `server.key_secret`: the interchange (CURVE server);
//! - `manager.key` / `manager.key_secret`: the manager identity, which
//!   pool-managers use; admitted only on the interchange's manager socket;
//! - `client.key` / `client.key_secret`: the default client identity
//!   (named `default`, an admin);
//! - `client-NAME.key` / `client-NAME.key_secret`: client identity NAME
//!   (`rhtex keygen --client NAME DIR`).
//!
//! Client identities are admitted only on the client socket. A user needs
//! only `server.key` and their own pair. A directory made by an older
//! rhtex (one client key shared by pool-managers and clients, no
//! `manager.key`) is refused with an error that says how to add a manager
//! identity (`rhtex keygen DIR` adds what is missing).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Names of the certificate files inside a key directory.
pub const SERVER_PUBLIC: &str = "server.key";
pub const SERVER_SECRET: &str = "server.key_secret";
pub const MANAGER_PUBLIC: &str = "manager.key";
pub const MANAGER_SECRET: &str = "manager.key_secret";
pub const CLIENT_PUBLIC: &str = "client.key";
pub const CLIENT_SECRET: &str = "client.key_secret";

/// The name of the default client identity (`client.key`).
pub const DEFAULT_CLIENT: &str = protocol::DEFAULT_CLIENT_IDENTITY;

/// The name the manager identity authenticates as.
pub const MANAGER_IDENTITY: &str = "manager";

/// The longest client identity name.
const MAX_CLIENT_NAME_BYTES: usize = 64;

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
    #[error(
        "{path} already holds keys (the server's, the manager's and the default client's); \
         to add a client identity use `rhtex keygen --client NAME {path}`"
    )]
    AlreadyExists { path: PathBuf },
    #[error("client identity {name} already exists in {path}; choose another name")]
    ClientExists { path: PathBuf, name: String },
    #[error(
        "{name:?} is not a valid client identity name: use 1 to {MAX_CLIENT_NAME_BYTES} \
         letters, digits, '-' or '_' (and not `default`, the default client identity)"
    )]
    BadClientName { name: String },
    #[error(
        "key directory {path} has the old layout of an older rhtex (one client key shared by \
         pool-managers and clients, no {MANAGER_PUBLIC}); run `rhtex keygen {path}` to add a \
         manager identity, then give pool-managers {MANAGER_SECRET} (and server.key) and restart"
    )]
    OldLayout { path: PathBuf },
    #[error(
        "key directory {path} has no client identity {name} ({file}); it has: {available}; \
         choose one with --client-key NAME (or RHTEX_CLIENT_KEY), or create it with \
         `rhtex keygen --client NAME DIR` in the interchange's key directory"
    )]
    NoClientIdentity {
        path: PathBuf,
        name: String,
        file: String,
        available: String,
    },
    #[error(
        "the same public key is in {first} and {second} of {path}; each identity needs a key \
         pair of its own (a manager key used by clients would let clients run pool-managers)"
    )]
    SharedKey {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("{path} has no {file}: it is not the interchange's key directory (make one with `rhtex keygen {path}`)")]
    NoServerKey { path: PathBuf, file: &'static str },
    #[error("cannot generate a CURVE key pair: {0}")]
    Generate(String),
}

/// The name of a client identity: `default` (the files `client.key` and
/// `client.key_secret`) or NAME (`client-NAME.key`, `client-NAME.key_secret`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientName(String);

impl Default for ClientName {
    fn default() -> Self {
        Self(DEFAULT_CLIENT.to_owned())
    }
}

impl std::fmt::Display for ClientName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ClientName {
    type Err = KeyError;

    /// `default`, or a name of 1 to 64 letters, digits, `-` or `_`.
    fn from_str(name: &str) -> Result<Self, KeyError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_CLIENT_NAME_BYTES
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(KeyError::BadClientName {
                name: name.to_owned(),
            })
        }
    }
}

/// The environment variable that chooses the client identity
/// (`rhtex --client-key`, the client libraries).
pub const CLIENT_KEY_ENV: &str = "RHTEX_CLIENT_KEY";

impl ClientName {
    /// The identity `RHTEX_CLIENT_KEY` names, else the default one.
    pub fn from_env() -> Result<Self, KeyError> {
        match std::env::var(CLIENT_KEY_ENV) {
            Ok(name) if !name.is_empty() => name.parse(),
            _ => Ok(Self::default()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_CLIENT
    }

    /// The file name stem: `client` or `client-NAME`.
    fn stem(&self) -> String {
        if self.is_default() {
            "client".to_owned()
        } else {
            format!("client-{}", self.0)
        }
    }

    /// The client identity a public file name holds, if it is one.
    fn of_public_file(file_name: &str) -> Option<Self> {
        if file_name == CLIENT_PUBLIC {
            return Some(Self::default());
        }
        let name = file_name.strip_prefix("client-")?.strip_suffix(".key")?;
        match name.parse::<Self>() {
            Ok(name) if !name.is_default() => Some(name),
            _ => None,
        }
    }
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

/// What the interchange needs: its key pair and the public keys it
/// admits, each with the name of its identity: manager keys on the manager
/// socket, client keys on the client socket.
#[derive(Clone, Debug)]
pub struct ServerKeys {
    pub server: KeyPair,
    pub managers: HashMap<[u8; 32], String>,
    pub clients: HashMap<[u8; 32], String>,
    /// `*.key` files that are no identity (neither `manager.key` nor
    /// `client.key` nor `client-NAME.key`): not admitted.
    pub ignored: Vec<PathBuf>,
}

/// What a pool-manager or client needs: the server's public key and its
/// own key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Creates `dir` with mode 0700 if needed (and makes its mode exact).
fn make_directory(dir: &Path) -> Result<(), KeyError> {
    let write_error = |source| KeyError::Write {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_error)?;
    }
    // DirBuilder's mode is filtered by the umask; make it exact.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_error)
}

/// Writes a fresh pair as `STEM.key` and `STEM.key_secret`.
fn write_pair(dir: &Path, stem: &str) -> Result<(), KeyError> {
    let pair = KeyPair::generate()?;
    write_certificate(&dir.join(format!("{stem}.key")), &pair, false)?;
    write_certificate(&dir.join(format!("{stem}.key_secret")), &pair, true)
}

/// Fills `dir` (created with mode 0700) with what a deployment needs: the
/// server's pair, the manager identity and the default client identity.
/// Pairs already there are kept, so that a directory of the old layout
/// gets its manager identity; refuses when all three exist.
pub fn keygen(dir: &Path) -> Result<(), KeyError> {
    let missing: Vec<&str> = ["server", "manager", "client"]
        .into_iter()
        .filter(|stem| !dir.join(format!("{stem}.key_secret")).exists())
        .collect();
    if missing.is_empty() {
        return Err(KeyError::AlreadyExists {
            path: dir.to_path_buf(),
        });
    }
    make_directory(dir)?;
    for stem in missing {
        write_pair(dir, stem)?;
    }
    Ok(())
}

/// Adds client identity `name` to the interchange's key directory `dir`
/// (made by [`keygen`]): `client-NAME.key` (which the interchange admits
/// from its next start or SIGHUP) and `client-NAME.key_secret` (for the
/// user). Refuses a name that exists.
pub fn keygen_client(dir: &Path, name: &ClientName) -> Result<(), KeyError> {
    check_directory(dir)?;
    if !dir.join(SERVER_PUBLIC).exists() {
        return Err(KeyError::NoServerKey {
            path: dir.to_path_buf(),
            file: SERVER_PUBLIC,
        });
    }
    let stem = name.stem();
    if dir.join(format!("{stem}.key")).exists() || dir.join(format!("{stem}.key_secret")).exists() {
        return Err(KeyError::ClientExists {
            path: dir.to_path_buf(),
            name: name.to_string(),
        });
    }
    write_pair(dir, &stem)
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

/// Loads the interchange's keys: its own pair, the manager identity
/// (`manager.key`) and every client identity (`client.key`,
/// `client-NAME.key`). A directory without `manager.key` has the old
/// layout and is refused; a public key found in two files is refused.
pub fn load_server_keys(dir: &Path) -> Result<ServerKeys, KeyError> {
    check_directory(dir)?;
    let server = read_pair(&dir.join(SERVER_SECRET))?;
    if !dir.join(MANAGER_PUBLIC).exists() {
        return Err(KeyError::OldLayout {
            path: dir.to_path_buf(),
        });
    }
    let mut seen: HashMap<[u8; 32], String> =
        HashMap::from([(server.public, SERVER_PUBLIC.to_owned())]);
    let mut remember = |key: [u8; 32], file: &str| match seen.insert(key, file.to_owned()) {
        Some(first) => Err(KeyError::SharedKey {
            path: dir.to_path_buf(),
            first,
            second: file.to_owned(),
        }),
        None => Ok(()),
    };
    let manager = read_public(&dir.join(MANAGER_PUBLIC))?;
    remember(manager, MANAGER_PUBLIC)?;
    let managers = HashMap::from([(manager, MANAGER_IDENTITY.to_owned())]);
    let mut clients = HashMap::new();
    let mut ignored = Vec::new();
    let entries = fs::read_dir(dir).map_err(|source| KeyError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".key"))
        .collect();
    names.sort();
    for file_name in names {
        if file_name == SERVER_PUBLIC || file_name == MANAGER_PUBLIC {
            continue;
        }
        let path = dir.join(&file_name);
        match ClientName::of_public_file(&file_name) {
            Some(name) => {
                let key = read_public(&path)?;
                remember(key, &file_name)?;
                clients.insert(key, name.to_string());
            }
            None => ignored.push(path),
        }
    }
    Ok(ServerKeys {
        server,
        managers,
        clients,
        ignored,
    })
}

/// Loads a pool-manager's keys: the server's public key and the manager
/// identity's pair.
pub fn load_manager_keys(dir: &Path) -> Result<ClientKeys, KeyError> {
    check_directory(dir)?;
    if !dir.join(MANAGER_SECRET).exists() && dir.join(CLIENT_SECRET).exists() {
        return Err(KeyError::OldLayout {
            path: dir.to_path_buf(),
        });
    }
    Ok(ClientKeys {
        server_public: read_public(&dir.join(SERVER_PUBLIC))?,
        client: read_pair(&dir.join(MANAGER_SECRET))?,
    })
}

/// Loads the default client identity's keys: the server's public key and
/// the pair of `client.key_secret`.
pub fn load_client_keys(dir: &Path) -> Result<ClientKeys, KeyError> {
    load_client_keys_as(dir, &ClientName::default())
}

/// Loads client identity `name`: the server's public key and its pair.
pub fn load_client_keys_as(dir: &Path, name: &ClientName) -> Result<ClientKeys, KeyError> {
    check_directory(dir)?;
    let file = format!("{}.key_secret", name.stem());
    let path = dir.join(&file);
    if !path.exists() {
        return Err(KeyError::NoClientIdentity {
            path: dir.to_path_buf(),
            name: name.to_string(),
            file,
            available: client_identities(dir),
        });
    }
    Ok(ClientKeys {
        server_public: read_public(&dir.join(SERVER_PUBLIC))?,
        client: read_pair(&path)?,
    })
}

/// The client identities whose secret files are in `dir`, for messages.
fn client_identities(dir: &Path) -> String {
    let names: BTreeMap<String, ()> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let file_name = entry.file_name().to_str()?.to_owned();
                    let public = file_name.strip_suffix("_secret")?;
                    ClientName::of_public_file(public).map(|name| (name.to_string(), ()))
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "no client identity".to_owned()
    } else {
        names.into_keys().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity that `identities` gives the key `public`, if any.
    fn identity<'a>(
        identities: &'a HashMap<[u8; 32], String>,
        public: &[u8; 32],
    ) -> Option<&'a str> {
        identities.get(public).map(String::as_str)
    }

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
        assert_eq!(
            identity(&server.clients, &client.client.public),
            Some(DEFAULT_CLIENT)
        );
        assert!(!server.clients.contains_key(&server.server.public));
        let manager = load_manager_keys(&dir).expect("manager keys");
        assert_eq!(
            identity(&server.managers, &manager.client.public),
            Some(MANAGER_IDENTITY)
        );
        assert!(!server.clients.contains_key(&manager.client.public));
        assert!(matches!(keygen(&dir), Err(KeyError::AlreadyExists { .. })));
    }

    #[test]
    fn client_identities_are_added_and_chosen() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("keys");
        keygen(&dir).expect("keygen");
        let alice: ClientName = "alice".parse().expect("name");
        keygen_client(&dir, &alice).expect("add alice");
        assert!(matches!(
            keygen_client(&dir, &alice),
            Err(KeyError::ClientExists { .. })
        ));
        let server = load_server_keys(&dir).expect("server keys");
        let keys = load_client_keys_as(&dir, &alice).expect("alice's keys");
        assert_eq!(
            identity(&server.clients, &keys.client.public),
            Some("alice")
        );
        let bob: ClientName = "bob".parse().expect("name");
        let error = load_client_keys_as(&dir, &bob).expect_err("no bob");
        let text = error.to_string();
        assert!(text.contains("client-bob.key_secret"), "{text}");
        assert!(text.contains("alice, default"), "{text}");
        for bad in ["", "a b", "../x", "x.key", &"n".repeat(65)] {
            assert!(bad.parse::<ClientName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn old_layout_is_named_and_keygen_completes_it() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("keys");
        keygen(&dir).expect("keygen");
        fs::remove_file(dir.join(MANAGER_PUBLIC)).expect("rm");
        fs::remove_file(dir.join(MANAGER_SECRET)).expect("rm");
        for error in [
            load_server_keys(&dir).expect_err("old layout"),
            load_manager_keys(&dir).expect_err("old layout"),
        ] {
            assert!(matches!(error, KeyError::OldLayout { .. }), "{error}");
            assert!(error.to_string().contains("rhtex keygen"), "{error}");
        }
        let before = load_client_keys(&dir).expect("client keys");
        keygen(&dir).expect("adds the manager identity");
        load_server_keys(&dir).expect("server keys");
        assert_eq!(load_client_keys(&dir).expect("client keys"), before);
    }

    #[test]
    fn a_key_in_two_roles_is_refused_and_strangers_ignored() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("keys");
        keygen(&dir).expect("keygen");
        fs::copy(dir.join(CLIENT_PUBLIC), dir.join("stranger.key")).expect("copy");
        let server = load_server_keys(&dir).expect("server keys");
        assert_eq!(server.ignored, vec![dir.join("stranger.key")]);
        fs::copy(dir.join(CLIENT_PUBLIC), dir.join("client-copy.key")).expect("copy");
        let error = load_server_keys(&dir).expect_err("shared key");
        assert!(matches!(error, KeyError::SharedKey { .. }), "{error}");
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
