"""The server: one process that owns the database and is its only writer.

Run it with `python -m micro_namedtuple_sqlite_persister.server DB_PATH`, or from
Python with `ServerProcess` (a child process) or `Server(ServerConfig(...))`.
"""

from .process import ServerProcess
from .service import Server, ServerConfig

__all__ = ["Server", "ServerConfig", "ServerProcess"]
