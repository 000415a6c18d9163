"""The client: `connect(address)` gives an object with the `Engine` methods.

Example (with a server running on the default address)::

    from micro_namedtuple_sqlite_persister.client import connect

    engine = connect("tcp://127.0.0.1:5555")
    row = engine.save(MyModel(None, "Bart", 6.5))

For a server with CURVE on, name this client's key pair and the server's public
key: `connect(address, curve=CurveKeys("keys/me.key_secret", "keys/server.key"))`.
"""

from micro_namedtuple_sqlite_persister.keys import CurveKeys

from .cursor import RemoteCursor
from .engine import RemoteEngine, connect

__all__ = ["CurveKeys", "RemoteCursor", "RemoteEngine", "connect"]
