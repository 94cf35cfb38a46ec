"""Changing the corpus through `citeqa serve`: uploads and removals as jobs, behind the API token,
and the limits that protect the server (rate limit, CORS, private mode, /docs offline), through a
real uvicorn server on a private copy of the bundled corpus and its index, with the real model."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from api_server import Server
from conftest import CORPUS_FILE, private_copy, run_command
from qa.config import Settings
from qa.ingest.text import squash_spaces
from qa.tools.serve import create_app

TOKEN = "tok-" + "7f3a9c" * 6
ARAL = "# Aral\n\nLa mer d'Aral, partagée entre le Kazakhstan et l'Ouzbékistan, a perdu les trois quarts de sa surface depuis 1960.\n"
ARAL_QUESTION = "Depuis quand la mer d'Aral a-t-elle perdu sa surface ?"
BORDER = "Quelle est la longueur de la frontière ?"
RATE_LIMIT, RATE_WINDOW = 3, 6
MAX_DOCUMENT_BYTES = 50_000  # the bundled article (12 KB) is under it


@pytest.fixture(scope="module")
def server(tmp_path_factory, index_dir, embedder):
    folder = tmp_path_factory.mktemp("written")
    (folder / "token").write_text(TOKEN + "\n", "utf-8")
    environment = {"QA_JOBS": str(folder / "jobs"), "QA_ASK_RATE_LIMIT": str(RATE_LIMIT), "QA_ASK_RATE_WINDOW": str(RATE_WINDOW),
                   "QA_MAX_DOCUMENT_BYTES": str(MAX_DOCUMENT_BYTES)}
    with Server(private_copy(folder, index_dir, embedder), folder / "feedback.jsonl", ("--token-file", str(folder / "token")),
                environment) as running:
        yield running


def authorised(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def finished_job(server: Server, answer, seconds: float = 180) -> dict:
    """The job a 202 answer started, polled at GET /jobs/{id} until it is over."""
    assert answer.status_code == 202, answer.text
    location = answer.headers["location"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = server.client.get(location).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"the job {location} did not finish in {seconds} s: {job}")


def corpus_names(server: Server) -> list[str]:
    return sorted(p.name for p in server.settings.corpus.iterdir())


@pytest.mark.parametrize(("method", "path", "upload"), [
    ("POST", "/documents", True), ("DELETE", "/documents/relations-kazakhstan-russie", False),
    ("POST", "/rebuild", False), ("POST", "/feedback", False),
])
def test_writing_without_the_token_or_with_a_wrong_one_is_a_401_and_changes_nothing(server, method, path, upload):
    before, built = corpus_names(server), (server.settings.index / "CURRENT").read_text("utf-8")
    kwargs = {"files": [("files", ("aral.md", ARAL.encode()))]} if upload else {"json": {"question": BORDER, "vote": "up"}} if "feedback" in path else {}
    for headers, says in (({}, "this needs the API token"), (authorised("not-the-token-at-all"), "wrong API token"),
                          ({"Authorization": f"Basic {TOKEN}"}, "this needs the API token")):
        answer = server.client.request(method, path, headers=headers, **kwargs)
        assert answer.status_code == 401 and says in answer.json()["detail"], answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
    time.sleep(0.5)
    assert corpus_names(server) == before and (server.settings.index / "CURRENT").read_text("utf-8") == built
    assert not server.feedback.exists()


def test_an_upload_indexes_new_files_recognises_a_duplicate_and_refuses_bad_ones(server):
    files = [
        ("files", ("aral.md", ARAL.encode())),
        ("files", ("copie.txt", CORPUS_FILE.read_bytes())),  # the bundled article under another name
        ("files", ("photo.txt", bytes(range(256)) * 8)),  # a binary renamed .txt
        ("files", ("../../evil.md", ARAL.encode())),
        ("files", ("notes.exe", b"MZ\x90\x00")),
        ("files", ("huge.md", b"# Huge\n\n" + b"mot " * MAX_DOCUMENT_BYTES)),
    ]
    answer = server.client.post("/documents", headers=authorised(), files=files)
    assert [f["status"] for f in answer.json()["files"]] == ["queued", "queued", "queued", "refused", "refused", "refused"]
    job = finished_job(server, answer)
    statuses = {f["name"]: (f["status"], f["detail"], f["document"]) for f in job["files"]}
    assert job["state"] == "done" and statuses["aral.md"] == ("indexed", None, "aral")
    assert statuses["copie.txt"] == ("duplicate", "the same content as relations-kazakhstan-russie.txt, in the corpus already",
                                     "relations-kazakhstan-russie")
    assert statuses["photo.txt"][0] == "refused" and statuses["photo.txt"][1].startswith("photo.txt: ")  # the reader's message
    assert "plain file name" in statuses["../../evil.md"][1] and re.search(r"reads .*\.md.* files only", statuses["notes.exe"][1])
    assert f"over {MAX_DOCUMENT_BYTES} bytes" in statuses["huge.md"][1]
    assert corpus_names(server) == ["aral.md", "relations-kazakhstan-russie.txt"]
    assert not list(server.settings.corpus.parent.rglob("evil.md"))
    assert {d["title"] for d in server.client.get("/documents").json()} == {"Relations entre le Kazakhstan et la Russie", "Aral"}
    answer = server.client.post("/ask", json={"question": ARAL_QUESTION}).json()
    assert answer["passages"][0]["document"] == "Aral" and answer["answer_text"] == "1960"
    again = finished_job(server, server.client.post("/documents", headers=authorised(), files=[("files", ("aral-2.md", ARAL.encode()))]))
    assert again["files"][0]["status"] == "duplicate" and again["files"][0]["document"] == "aral"


def test_a_removed_document_is_gone_and_the_last_one_is_kept(server):
    if "aral.md" not in corpus_names(server):
        finished_job(server, server.client.post("/documents", headers=authorised(), files=[("files", ("aral.md", ARAL.encode()))]))
    job = finished_job(server, server.client.delete("/documents/aral", headers=authorised()))
    assert (job["state"], job["files"]) == ("done", [{"name": "aral.md", "status": "removed", "detail": None, "document": "aral"}])
    assert corpus_names(server) == ["relations-kazakhstan-russie.txt"]
    assert [d["id"] for d in server.client.get("/documents").json()] == ["relations-kazakhstan-russie"]
    built = (server.settings.index / "CURRENT").read_text("utf-8")
    job = finished_job(server, server.client.delete("/documents/relations-kazakhstan-russie", headers=authorised()))
    assert job["state"] == "failed" and "no passages" in job["message"] and job["files"][0]["status"] == "refused"
    assert corpus_names(server) == ["relations-kazakhstan-russie.txt"] and (server.settings.index / "CURRENT").read_text("utf-8") == built
    assert "6 846 km" in squash_spaces(server.client.post("/ask", json={"question": BORDER}).json()["answer_text"])
    missing = server.client.delete("/documents/atlantide", headers=authorised())
    assert (missing.status_code, missing.json()) == (404, {"detail": "no document with id 'atlantide' in the corpus folder"})
    assert server.client.get("/jobs/" + "0" * 32).status_code == 404


def test_a_rebuild_and_a_vote_with_the_token(server):
    job = finished_job(server, server.client.post("/rebuild", headers=authorised()))
    assert (job["kind"], job["state"], job["files"]) == ("rebuild", "done", [])
    time.sleep(RATE_WINDOW)  # the questions of the tests before are out of the rate limit's window
    vote = server.client.post("/feedback", headers=authorised(), json={"question": BORDER, "vote": "down"})
    assert vote.status_code == 200 and vote.json()["vote"] == "down"


def test_questions_beyond_the_rate_limit_get_a_429_with_retry_after(server):
    time.sleep(RATE_WINDOW)
    statuses = [server.client.post("/ask", json={}).status_code for _ in range(RATE_LIMIT)]  # refused (422), but counted
    refused = server.client.post("/ask", json={"question": BORDER})
    assert statuses == [422] * RATE_LIMIT and refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= RATE_WINDOW and f"at most {RATE_LIMIT} per {RATE_WINDOW} s" in refused.json()["detail"]
    time.sleep(wait)
    assert server.client.post("/ask", json={"question": BORDER}).status_code == 200


def test_the_docs_page_and_its_assets_come_from_the_server(server):
    page = server.client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) == 3 and all(a.startswith("/docs/assets/") for a in assets) and "//" not in page.replace("://", "")
    for asset in assets:
        answer = server.client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 500
    assert "SwaggerUIBundle" in server.client.get("/docs/assets/swagger-ui-bundle.js").text


def test_cross_origin_calls_only_from_the_configured_origins(index_dir):
    preflight = {"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
    closed = TestClient(create_app(Settings.from_env(index=index_dir))).options("/ask", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    settings = Settings.from_env(index=index_dir, api_cors_origins="https://intranet.example, https://other.example")
    opened = TestClient(create_app(settings)).options("/ask", headers=preflight)
    assert opened.status_code == 200 and opened.headers["access-control-allow-origin"] == "https://intranet.example"
    elsewhere = TestClient(create_app(settings)).options("/ask", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers


def test_a_private_server_answers_only_with_the_token(index_dir, tmp_path):
    (tmp_path / "token").write_text(TOKEN, "utf-8")
    settings = Settings.from_env(index=index_dir, api_token_file=tmp_path / "token", api_private=True, jobs=tmp_path / "jobs")
    with TestClient(create_app(settings)) as client:
        for path in ("/status", "/documents", "/passages/x", "/jobs/" + "0" * 32):
            assert client.get(path).status_code == 401
        assert client.post("/ask", json={"question": BORDER}).status_code == 401
        assert client.get("/health").status_code == 200 and client.get("/docs").status_code == 200
        assert client.get("/documents", headers=authorised()).json()[0]["id"] == "relations-kazakhstan-russie"
        assert client.post("/ask", headers=authorised(), json={"question": BORDER}).json()["answered"]


def test_a_bad_token_file_or_a_private_server_without_one_is_refused_at_start(capsys, index_dir, tmp_path):
    (tmp_path / "short").write_text("secret", "utf-8")
    status, _, err = run_command(capsys, "--index", index_dir, "serve", "--token-file", tmp_path / "short")
    assert status == 1 and "must hold one token of at least 16 characters" in err
    status, _, err = run_command(capsys, "--index", index_dir, "serve", "--token-file", tmp_path / "absent")
    assert status == 1 and "cannot read the API token file" in err
    status, _, err = run_command(capsys, "--index", index_dir, "serve", "--private")
    assert status == 1 and "a private API needs a token" in err
