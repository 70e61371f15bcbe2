"""File formats of event sets: skminer's own HDF5 layout, MadMiner's HDF5 layout, pyhf workspaces
(:mod:`skminer.io.pyhf`, imported on use).

:class:`~skminer.events.EventSet` keeps the physics; its ``save`` / ``load`` / ``from_madminer`` /
``to_madminer`` methods delegate here. Every writer is atomic (a temporary file renamed over the target), and every
reader checks the declared shapes of a file against each other and against the data the file actually stores
before it allocates anything (:mod:`skminer.io._h5`), so a small hostile file cannot make it allocate gigabytes.
"""

from .events_h5 import FORMAT_VERSION, EventFileWriter, open_events, read_event_rows, read_events, write_events
from .madminer import read_madminer, write_madminer

__all__ = ["FORMAT_VERSION", "EventFileWriter", "open_events", "read_event_rows", "read_events",
           "read_madminer", "write_events", "write_madminer"]
