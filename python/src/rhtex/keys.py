"""CURVE key files, as the Rust side reads them (``crates/transport/src/keys.rs``).

A key directory holds ``server.key`` / ``server.key_secret`` (the
interchange), ``manager.key`` / ``manager.key_secret`` (the manager
identity, for pool-managers), ``client.key`` / ``client.key_secret`` (the
default client identity, ``default``, an admin) and
``client-NAME.key`` / ``client-NAME.key_secret`` (client identity NAME,
made by ``rhtex keygen --client NAME DIR``), in the ZPL certificate format
of pyzmq's ``zmq.auth``. A client chooses its identity with
``client_key`` (default: ``$RHTEX_CLIENT_KEY``, else ``default``). The
directory must be reachable by its owner only (no permission bits for
group or others); anything else is refused with the same advice as the
Rust side: ``chmod 700 DIR``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import zmq
from zmq.utils import z85

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
MANAGER_PUBLIC = "manager.key"
MANAGER_SECRET = "manager.key_secret"
CLIENT_PUBLIC = "client.key"
CLIENT_SECRET = "client.key_secret"

#: The default client identity (``client.key_secret``).
DEFAULT_CLIENT = "default"
#: The environment variable that chooses the client identity.
CLIENT_KEY_ENV = "RHTEX_CLIENT_KEY"

_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

PathLike = Union[str, "os.PathLike[str]"]


class KeyFileError(Exception):
    """A key directory or key file cannot be used; the message says why."""


@dataclass(frozen=True)
class ClientKeys:
    """What a client or pool-manager needs, as Z85 bytes (what pyzmq's
    ``curve_*`` socket options take)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes


def default_keys_dir() -> Path:
    """``$RHTEX_KEYS_DIR``, else ``~/.rhtex/keys``."""
    return Path(os.environ.get("RHTEX_KEYS_DIR") or os.path.expanduser("~/.rhtex/keys"))


def check_directory(directory: PathLike) -> Path:
    """Checks that ``directory`` exists and is reachable by its owner only."""
    path = Path(os.fspath(directory))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        raise KeyFileError(
            f"key directory {path} does not exist; create one with `rhtex keygen {path}`"
        ) from None
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"key directory {path} has mode {mode:04o}, so other users can reach it; "
            f"it must be accessible to its owner only: run `chmod 700 {path}`"
        )
    return path


_KEY_LINE = re.compile(r"^\s*(public-key|secret-key)\s*=\s*(.*?)\s*$")


def parse_key(text: str, name: str) -> Optional[bytes]:
    """The Z85 key called ``name`` (``public-key`` or ``secret-key``) in a
    certificate's text, or None."""
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if not match or match.group(1) != name:
            continue
        value = match.group(2).strip("\"'")
        if len(value) != 40:
            return None
        try:
            if len(z85.decode(value)) == 32:
                return value.encode("ascii")
        except Exception:
            return None
        return None
    return None


def _read(path: Path, name: str) -> bytes:
    try:
        text = path.read_text()
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error}") from None
    key = parse_key(text, name)
    if key is None:
        raise KeyFileError(f"{path} has no valid {name} (a 40-character Z85 string in quotes)")
    return key


def client_secret_file(client_key: Optional[str] = None) -> str:
    """The secret file of a client identity: ``client_key``, else
    ``$RHTEX_CLIENT_KEY``, else ``default``."""
    name = client_key or os.environ.get(CLIENT_KEY_ENV) or DEFAULT_CLIENT
    if not _CLIENT_NAME.match(name):
        raise KeyFileError(
            f"{name!r} is not a valid client identity name: use 1 to 64 letters, digits, '-' or '_'"
        )
    return CLIENT_SECRET if name == DEFAULT_CLIENT else f"client-{name}.key_secret"


def load_client_keys(
    directory: Optional[PathLike] = None, client_key: Optional[str] = None
) -> ClientKeys:
    """Loads the server's public key and a client identity's pair from a key
    directory (default :func:`default_keys_dir`), refusing one not mode 0700.
    ``client_key`` names the identity (default: ``$RHTEX_CLIENT_KEY``, else
    ``default``)."""
    path = check_directory(directory if directory is not None else default_keys_dir())
    secret_file = path / client_secret_file(client_key)
    if not secret_file.exists():
        raise KeyFileError(
            f"key directory {path} has no {secret_file.name}: choose another client identity "
            f"with client_key (or {CLIENT_KEY_ENV}), or create it with "
            "`rhtex keygen --client NAME DIR` in the interchange's key directory"
        )
    return ClientKeys(
        server_public=_read(path / SERVER_PUBLIC, "public-key"),
        client_public=_read(secret_file, "public-key"),
        client_secret=_read(secret_file, "secret-key"),
    )


def keygen(directory: PathLike) -> Path:
    """Fills a key directory (mode 0700) with the server's pair, the manager
    identity and the default client identity, as ``rhtex keygen`` does:
    pairs already there are kept; refuses when all three exist."""
    path = Path(os.fspath(directory))
    missing = [
        name
        for name in ("server", "manager", "client")
        if not (path / f"{name}.key_secret").exists()
    ]
    if not missing:
        raise KeyFileError(
            f"{path} already holds keys (the server's, the manager's and the default client's); "
            f"to add a client identity use `rhtex keygen --client NAME {path}`"
        )
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    for name in missing:
        public, secret = zmq.curve_keypair()
        for file_name, with_secret in ((f"{name}.key", False), (f"{name}.key_secret", True)):
            kind = "Secret" if with_secret else "Public"
            lines = [
                "#   ****  Generated by rhtex (Python)  ****",
                f"#   ZeroMQ CURVE **{kind}** Certificate",
                "",
                "metadata",
                "curve",
                f'    public-key = "{public.decode("ascii")}"',
            ]
            if with_secret:
                lines.append(f'    secret-key = "{secret.decode("ascii")}"')
            descriptor = os.open(path / file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write("\n".join(lines) + "\n")
    return path
