"""`python -m micro_namedtuple_sqlite_persister.server.keygen DIR NAME`.

Writes one CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret (secret,
mode 0600). Make one pair for the server and one per client (or per group of
clients that share a role).
"""

from __future__ import annotations

import argparse
import sys

from micro_namedtuple_sqlite_persister.errors import KeyFileError
from micro_namedtuple_sqlite_persister.keys import create_key_pair

PROG = "python -m micro_namedtuple_sqlite_persister.server.keygen"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Create a CURVE key pair for the server or for a client: "
        "DIR/NAME.key (public: copy it freely) and DIR/NAME.key_secret (secret, "
        "mode 0600: keep it on the machine that uses it). Existing files are "
        "never overwritten.",
        epilog="Server: --curve-secret-key DIR/server.key_secret, and each "
        "client's NAME.key copied into its --allowed-keys (read-write) or "
        "--read-only-keys directory. Client: connect(address, "
        "curve=CurveKeys('DIR/NAME.key_secret', 'server.key')).",
    )
    parser.add_argument("directory", metavar="DIR", help="where to write the pair")
    parser.add_argument("name", metavar="NAME", help="file name of the pair")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        public_path, secret_path = create_key_pair(args.directory, args.name)
    except (KeyFileError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {public_path}")
    print(f"secret key: {secret_path} (mode 0600: keep it private)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
