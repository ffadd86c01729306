"""The connector runner: pull loops under per-inbox leases, and the reply dispatcher.

``ConnectorRunner`` (``app.runner.supervisor``) is started from the application's
lifespan. It claims inboxes of pulled channel types through lease rows
(``app.runner.leases``) so that exactly one process polls each, runs an ``InboxWorker``
(``app.runner.worker``) per owned inbox, and warns about silent inboxes
(``app.runner.stale``). See ``docs/connectors.md``.
"""

from app.runner.supervisor import ConnectorRunner

__all__ = ["ConnectorRunner"]
