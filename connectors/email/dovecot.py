"""A throwaway Dovecot IMAP server on loopback, for the tests and the benchmark.

Debian's ``dovecot-imapd`` (``scripts/services.sh dovecot`` installs it) is run in the
foreground with its own configuration file under a private directory: its own socket and
state directories, one mail user in a passwd-file, Maildir storage, plain login without
TLS on a free loopback port. Nothing of the system's Dovecot configuration is used, so
several can run at once and each can be stopped and started again (the mail stays, as on
a real server restart).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal}
default_login_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    """Whether Dovecot is installed here."""
    return Path(DOVECOT).exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user(name: str, fallback: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return pwd.getpwnam(fallback)


class Dovecot:
    """One Dovecot instance with one mailbox user (``user`` / ``password``)."""

    def __init__(self, user: str = "support@example.test", password: str = "imap-test-password") -> None:
        self.user = user
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="postroom-dovecot-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Mail is owned by an unprivileged user when we are root (Dovecot refuses uid 0).
        owner = _user("dovecot", "nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        internal = _user("dovecot", "nobody").pw_name if os.geteuid() == 0 else owner.pw_name
        login_user = _user("dovenull", "nobody").pw_name if os.geteuid() == 0 else owner.pw_name
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir()
        self.root.chmod(0o755)
        (self.root / "passwd").write_text(
            f"{user}:{{PLAIN}}{password}:{owner.pw_uid}:{owner.pw_gid}::{self.root}/home\n")
        (self.root / "dovecot.conf").write_text(_CONFIG.format(
            root=self.root, port=self.port, internal=internal, login_user=login_user))
        if os.geteuid() == 0:
            for sub in ("mail", "home"):
                os.chown(self.root / sub, owner.pw_uid, owner.pw_gid)

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if self.process is not None:
            return
        log = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        """Stop the server and its children (the mail stays)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        # Children (imap, auth) leave with the master; give the port a moment to free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.1)
            except OSError:
                return

    def restart(self) -> None:
        """Stop and start again, as an administrator restarting the server."""
        self.stop()
        self.start()

    def log(self) -> str:
        """Dovecot's own log (for failure messages)."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        """Stop and remove everything."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
