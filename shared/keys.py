"""CURVE key files: make a key pair, read keys back, and name a client's keys.

A key pair is two files in the format of pyzmq's `zmq.auth`: `NAME.key` holds the
public key and may be copied anywhere; `NAME.key_secret` holds both halves of the
pair and stays private (mode 0600). Keys are z85 text of 40 characters.

Both sides use this module: the server reads its own pair and directories of
client public keys, a client reads its pair and the server's public key.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from .errors import KeyFileError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
Z85_KEY_CHARS = 40
KEYGEN_COMMAND = "python -m micro_namedtuple_sqlite_persister.server.keygen DIR NAME"


@dataclass(frozen=True)
class SocketKeys:
    """The z85 keys one client socket needs: its own pair and the server's key."""

    public_key: bytes
    secret_key: bytes = field(repr=False)
    server_key: bytes

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make `sock` a CURVE client of the server. Call before it connects."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret_key)


@dataclass(frozen=True)
class CurveKeys:
    """Where a client finds its CURVE key pair and the server's public key.

    `client_secret_file` is the client's `NAME.key_secret` (it holds both halves
    of the pair); `server_public_file` is the server's `NAME.key`. Only the paths
    are held, and pickled with a client engine; `load()` reads the files.
    """

    client_secret_file: str | os.PathLike[str]
    server_public_file: str | os.PathLike[str]

    def load(self) -> SocketKeys:
        """Read the three keys. Raises KeyFileError naming a missing or bad file."""
        public_key, secret_key = load_key_pair(self.client_secret_file)
        server_key = load_public_key(self.server_public_file)
        return SocketKeys(public_key, secret_key, server_key)


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The z85 public key in either file of a pair; KeyFileError if it has none."""
    return _read_key_file(path)[0]


def load_key_pair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a `NAME.key_secret` file; KeyFileError if not."""
    public_key, secret_key = _read_key_file(path)
    if secret_key is None:
        raise KeyFileError(
            f"{path} holds no secret key: pass the NAME{SECRET_SUFFIX} file of the "
            f"pair, not NAME{PUBLIC_SUFFIX}."
        )
    return public_key, _checked_key(path, "secret", secret_key)


def load_public_keys(directory: str | os.PathLike[str]) -> dict[bytes, Path]:
    """Every public key in the `*.key` files of `directory`, mapped to its file.

    Raises KeyFileError if `directory` is not a directory or a file is malformed.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise KeyFileError(
            f"key directory {folder} does not exist or is not a directory; create "
            f"it and copy the clients' NAME{PUBLIC_SUFFIX} files into it."
        )
    paths = sorted(folder.glob("*" + PUBLIC_SUFFIX))
    return {load_public_key(path): path for path in paths}


def create_key_pair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write `NAME.key` and `NAME.key_secret` (mode 0600) into `directory`.

    The pair is made in a private temporary directory (mode 0700) inside
    `directory` and moved out, so the secret file is never readable by others,
    not even briefly. Raises KeyFileError for a NAME that is not a plain file
    name or whose files exist already: an existing key is never replaced.
    """
    _check_key_name(name)
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_path = folder / (name + PUBLIC_SUFFIX)
    secret_path = folder / (name + SECRET_SUFFIX)
    for path in (public_path, secret_path):
        if path.exists():
            raise KeyFileError(
                f"{path} already exists; choose another NAME, or move the old pair "
                "away first if you mean to replace it."
            )

    with tempfile.TemporaryDirectory(dir=folder, prefix=".keygen-") as private:
        made_public, made_secret = zmq.auth.create_certificates(private, name)
        os.chmod(made_secret, 0o600)
        os.replace(made_secret, secret_path)
        os.replace(made_public, public_path)
    return public_path, secret_path


def _check_key_name(name: str) -> None:
    if not name or name.startswith(".") or Path(name).name != name:
        raise KeyFileError(
            f"key name {name!r} is not a plain file name; use letters, digits and "
            "dashes, e.g. 'server' or 'worker-1'."
        )


def _read_key_file(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    try:
        public_key, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(
            f"cannot read a CURVE key from {path}: {exc}. Key files are made with "
            f"`{KEYGEN_COMMAND}`."
        ) from exc
    return _checked_key(path, "public", public_key), secret_key


def _checked_key(path: str | os.PathLike[str], kind: str, key: bytes) -> bytes:
    """`key` if it is a valid z85 key; the message never shows the key itself."""
    if len(key) == Z85_KEY_CHARS:
        try:
            z85.decode(key)
            return key
        except (KeyError, struct.error):
            pass
    raise KeyFileError(
        f"the {kind} key in {path} is not a {Z85_KEY_CHARS}-character z85 key; the "
        f"file is damaged. Make a new pair with `{KEYGEN_COMMAND}`."
    )
