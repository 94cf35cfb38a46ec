"""A ``citeqa serve`` process for the tests, on a free loopback port, and a client for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import ROOT
from streamlit_server import free_port
from qa.config import Settings


class Server:
    """A ``citeqa serve`` process on a free loopback port; as a context manager, up (its /health
    answers) inside and stopped after. Its votes go to ``feedback``, its log beside it; ``options``
    go to ``citeqa serve``, ``environment`` (QA_* settings) to its process."""

    def __init__(self, settings: Settings, feedback: Path, options: tuple[str, ...] = (), environment: dict[str, str] | None = None) -> None:
        self.settings, self.feedback = settings, feedback
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (feedback.parent / "server.log").open("w")
        command = [sys.executable, "-m", "qa", "--corpus", str(settings.corpus), "--index", str(settings.index),
                   "serve", "--host", "127.0.0.1", "--port", str(self.port), *options]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "QA_FEEDBACK": str(feedback), **(environment or {})},
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def wait_until_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited: {self.logged()}"
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError(f"the server did not answer /health within {seconds} s: {self.logged()}")

    def logged(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def raw(self, request: bytes) -> tuple[int, dict]:
        """Send bytes as they are and read the status and JSON body of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    def __enter__(self) -> "Server":
        try:
            self.wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exception) -> None:
        self.stop()

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
