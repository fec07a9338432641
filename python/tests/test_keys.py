"""Key files: pyzmq's format, and the 0700 rule of the Rust side."""

from __future__ import annotations

import os
import subprocess

import pytest
import zmq.auth

from rhtex import keys

from conftest import bin_dir


def test_keygen_then_load(keys_dir):
    assert oct(os.stat(keys_dir).st_mode & 0o777) == "0o700"
    loaded = keys.load_client_keys(keys_dir)
    server_public, _ = zmq.auth.load_certificate(str(keys_dir / "server.key"))
    client_public, client_secret = zmq.auth.load_certificate(str(keys_dir / "client.key_secret"))
    assert loaded == keys.ClientKeys(server_public, client_public, client_secret)


def test_open_directory_is_refused(keys_dir):
    os.chmod(keys_dir, 0o755)
    with pytest.raises(keys.KeyFileError) as caught:
        keys.load_client_keys(keys_dir)
    assert "mode 0755" in str(caught.value)
    assert f"chmod 700 {keys_dir}" in str(caught.value)


def test_group_readable_is_refused(keys_dir):
    os.chmod(keys_dir, 0o740)
    with pytest.raises(keys.KeyFileError, match="mode 0740"):
        keys.load_client_keys(keys_dir)


def test_missing_directory_names_keygen(tmp_path):
    with pytest.raises(keys.KeyFileError, match="rhtex keygen"):
        keys.load_client_keys(tmp_path / "nowhere")


def test_keygen_refuses_to_overwrite(keys_dir):
    with pytest.raises(keys.KeyFileError, match="already holds keys"):
        keys.keygen(keys_dir)


def test_bad_certificate_is_named(keys_dir):
    (keys_dir / "server.key").write_text('public-key = "short"\n')
    with pytest.raises(keys.KeyFileError, match="server.key has no valid public-key"):
        keys.load_client_keys(keys_dir)


def test_pyzmq_certificates_load(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    zmq.auth.create_certificates(str(directory), "server")
    zmq.auth.create_certificates(str(directory), "client")
    loaded = keys.load_client_keys(directory)
    assert loaded.server_public == zmq.auth.load_certificate(str(directory / "server.key"))[0]


def test_rhtex_keygen_files_load(tmp_path):
    program = bin_dir() / "rhtex"
    subprocess.run([str(program), "keygen", str(tmp_path / "k")], check=True, capture_output=True)
    loaded = keys.load_client_keys(tmp_path / "k")
    assert len(loaded.server_public) == 40 and len(loaded.client_secret) == 40


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RHTEX_KEYS_DIR", str(tmp_path))
    assert keys.default_keys_dir() == tmp_path


def test_keygen_makes_the_manager_and_default_identities(keys_dir):
    for name in ("server", "manager", "client"):
        assert (keys_dir / f"{name}.key").exists() and (keys_dir / f"{name}.key_secret").exists()
    manager_public, _ = zmq.auth.load_certificate(str(keys_dir / "manager.key_secret"))
    assert keys.load_client_keys(keys_dir).client_public != manager_public


def test_a_client_identity_is_chosen_by_name_or_environment(keys_dir, monkeypatch):
    program = bin_dir() / "rhtex"
    subprocess.run(
        [str(program), "keygen", "--client", "alice", str(keys_dir)],
        check=True,
        capture_output=True,
    )
    alice_public, _ = zmq.auth.load_certificate(str(keys_dir / "client-alice.key_secret"))
    assert keys.load_client_keys(keys_dir, "alice").client_public == alice_public
    monkeypatch.setenv("RHTEX_CLIENT_KEY", "alice")
    assert keys.load_client_keys(keys_dir).client_public == alice_public
    with pytest.raises(keys.KeyFileError, match="client-bob.key_secret"):
        keys.load_client_keys(keys_dir, "bob")
    with pytest.raises(keys.KeyFileError, match="not a valid client identity name"):
        keys.load_client_keys(keys_dir, "../x")
