"""`python -m micro_namedtuple_sqlite_persister.server DB_PATH [--bind ADDRESS ...]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from types import FrameType

from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.errors import PersisterError
from micro_namedtuple_sqlite_persister.keys import KEYGEN_COMMAND

from .service import Server, ServerConfig

log = logging.getLogger("micro_namedtuple_sqlite_persister.server")


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(
        prog="python -m micro_namedtuple_sqlite_persister.server",
        description="Serve one SQLite database to many client processes as its "
        "only writer, over ZeroMQ. Stops cleanly on SIGTERM or Ctrl-C.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("db_path", help="SQLite database file (created if missing)")
    parser.add_argument(
        "--bind",
        action="append",
        metavar="ADDRESS",
        default=argparse.SUPPRESS,  # the help names the real default
        help=f"address to listen on, tcp://HOST:PORT or ipc://PATH; repeatable "
        f"(default: {wire.DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--synchronous",
        choices=["normal", "full"],
        default="normal",
        help="durability: normal survives a process crash; full also survives "
        "power loss, at one fsync per commit",
    )
    parser.add_argument(
        "--readers", type=int, default=2, help="reader threads for queries"
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=wire.DEFAULT_MAX_MESSAGE_BYTES,
        help="larger messages are refused and their sender disconnected",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=512,
        help="most requests committed together in one group commit",
    )
    parser.add_argument(
        "--max-queued-per-client",
        type=int,
        default=1000,
        help="most writes one client may have waiting behind a transaction",
    )
    parser.add_argument(
        "--max-reads-per-client",
        type=int,
        default=4,
        help="most queries and finds one client may have running or waiting on "
        "the reader threads; more get an error at once",
    )
    parser.add_argument(
        "--lease-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a transaction whose client sends nothing for this long is rolled back",
    )
    parser.add_argument(
        "--page-rows", type=int, default=1000, help="most rows in one query page"
    )
    parser.add_argument(
        "--cursor-idle",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="an unfinished query cursor left alone this long is closed",
    )
    parser.add_argument(
        "--dedupe-window",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long applied write ids are remembered to answer retries",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on stop, how long to wait for running queries and unsent replies",
    )
    _add_security_options(parser)
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (logs go to stderr)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return ServerConfig(
        db_path=args.db_path,
        binds=getattr(args, "bind", None) or [wire.DEFAULT_ADDRESS],
        synchronous=args.synchronous,
        readers=args.readers,
        max_message_bytes=args.max_message_bytes,
        max_batch=args.max_batch,
        max_queued_per_client=args.max_queued_per_client,
        max_reads_per_client=args.max_reads_per_client,
        lease_timeout_s=args.lease_timeout,
        page_rows=args.page_rows,
        cursor_idle_s=args.cursor_idle,
        dedupe_window_s=args.dedupe_window,
        stop_timeout_s=args.stop_timeout,
        is_insecure=args.insecure,
        curve_secret_key_file=getattr(args, "curve_secret_key", None),
        allowed_keys_dir=getattr(args, "allowed_keys", None),
        read_only_keys_dir=getattr(args, "read_only_keys", None),
    )


def _add_security_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "security",
        "Without CURVE any process that reaches the address is served, so TCP "
        "is allowed only on loopback unless --insecure. With --curve-secret-key "
        "traffic is encrypted and only clients whose public keys are in "
        "--allowed-keys or --read-only-keys are served; others get no reply and "
        "are logged at WARNING. Key directories are read at start. Make key "
        f"pairs with: {KEYGEN_COMMAND}",
    )
    # SUPPRESS: off by default, and no "(default: None)" in the help.
    group.add_argument(
        "--curve-secret-key",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="the server's NAME.key_secret: turns CURVE authentication and "
        "encryption on; clients need the matching NAME.key",
    )
    group.add_argument(
        "--allowed-keys",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="directory of client public keys (*.key) allowed to read and write",
    )
    group.add_argument(
        "--read-only-keys",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="directory of client public keys (*.key) allowed only to ping, find "
        "and query; their writes, transactions and SQL execute are refused",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow TCP addresses reachable from other hosts, without authentication",
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if config.is_insecure and config.curve_secret_key_file is None:
        log.warning("--insecure: serving without authentication binds=%s", config.binds)
    try:
        server = Server(config)
    except (PersisterError, OSError, sqlite3.Error) as exc:
        log.error(
            "cannot start database=%s reason=%s: %s (check that the directory "
            "exists and the file is a SQLite database you may write)",
            config.db_path,
            type(exc).__name__,
            exc,
        )
        return 2

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping signal=%s", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.serve()
    except Exception:
        log.exception("server failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
