"""`citeqa serve`: the HTTP JSON API, through a real uvicorn server on a loopback port, on a
private copy of the bundled corpus and its index, with the real model."""

from __future__ import annotations

import re
import statistics
import threading
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.errors import FailureGroup

from api_server import Server
from conftest import ROOT, private_copy
from qa.engine import build, index_status
from qa.ingest.text import squash_spaces
from qa.tools.shapes import answer_json, status_json
from qa.tools.feedback import read_votes
from qa.tools.serve import create_app

BORDER = "Quelle est la longueur de la frontière ?"
TROOPS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
NEW_ARTICLE = "# Aral\n\nLa mer d'Aral, partagée entre le Kazakhstan et l'Ouzbékistan, a perdu les trois quarts de sa surface depuis 1960.\n"


TOKEN = "token-of-the-test-server-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory, index_dir, embedder):
    folder = tmp_path_factory.mktemp("served")
    (folder / "token").write_text(TOKEN, "utf-8")
    environment = {"QA_ASK_RATE_LIMIT": "0", "QA_JOBS": str(folder / "jobs")}  # the load test below asks as fast as it can
    with Server(private_copy(folder, index_dir, embedder), folder / "feedback.jsonl", ("--token-file", str(folder / "token")),
                environment) as running:
        yield running


def test_ask_answers_the_same_object_as_ask_json(server, engine):
    response = server.client.post("/ask", json={"question": BORDER, "k": 2})
    assert response.status_code == 200
    assert response.json() == answer_json(engine.ask(BORDER, 2))
    assert "6 846 km" in squash_spaces(response.json()["answer_text"]) and len(response.json()["passages"]) == 2


def test_ask_within_an_article_and_in_english(server):
    answer = server.client.post("/ask", json={"question": "How long is the border?",
                                              "articles": ["Relations entre le Kazakhstan et la Russie"]}).json()
    assert answer["answered"] and "6 846" in squash_spaces(answer["answer_text"])


def test_status_is_status_json_and_documents_list_the_articles(server):
    assert server.client.get("/status").json() == status_json(index_status(server.settings))
    assert server.client.get("/documents").json() == [
        {"id": "relations-kazakhstan-russie", "title": "Relations entre le Kazakhstan et la Russie", "references": 13}]


def test_a_passage_comes_with_its_references_and_its_neighbours(server):
    answer = server.client.post("/ask", json={"question": TROOPS}).json()
    first = answer["passages"][0]
    passage = server.client.get(f"/passages/{first['id']}", params={"around": 1}).json()
    assert (passage["id"], passage["text"], passage["document"]) == (first["id"], first["text"], first["document"])
    assert passage["footnotes"] == first["footnotes"] and all(f["reference"] for f in passage["footnotes"])
    context = [p["id"] for p in passage["context"]]
    assert first["id"] in context and 2 <= len(context) <= 3
    alone = server.client.get(f"/passages/{first['id']}", params={"around": 0}).json()
    assert [p["id"] for p in alone["context"]] == [first["id"]]


def test_a_vote_is_recorded_as_the_chat_records_it(server):
    response = server.client.post("/feedback", json={"question": BORDER, "vote": "up"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert read_votes(server.feedback)[-1] == response.json()
    assert response.json()["vote"] == "up" and "6 846 km" in squash_spaces(response.json()["answer_sentence"])
    wrong = server.client.post("/feedback", json={"question": BORDER, "vote": "bof"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert wrong.status_code == 422 and "'up' or 'down'" in wrong.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("POST", "/ask", {"question": "   "}, 422, "empty"),
    ("POST", "/ask", {"question": "frontière " * 200}, 422, "limit is 1000"),
    ("POST", "/ask", {"question": 12}, 422, "body.question"),
    ("POST", "/ask", {"question": BORDER, "k": "three"}, 422, "body.k"),
    ("POST", "/ask", {}, 422, "Field required"),
    ("POST", "/ask", {"question": BORDER, "articles": ["Atlantide"]}, 404, "no article named 'Atlantide'"),
    ("POST", "/feedback", {"question": BORDER, "vote": "bof"}, 401, "this needs the API token"),
    ("GET", "/passages/no-such-passage", None, 404, "no passage with id 'no-such-passage'"),
    ("GET", "/passages/relations-kazakhstan-russie:s0p0c0?around=9", None, 422, "query.around"),
    ("GET", "/nowhere", None, 404, "Not Found"),
])
def test_wrong_requests_get_a_4xx_with_a_message(server, method, path, body, status, says):
    response = server.client.request(method, path, json=body)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str) and says in response.json()["detail"]


def test_invalid_json_is_a_422(server):
    response = server.client.post("/ask", content='{"question": "frontière'.encode(), headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (422, {"detail": "body is not valid JSON: Unterminated string starting at (character 13)"})


def test_a_body_of_megabytes_is_refused_before_it_is_read(server):
    declared = b"POST /ask HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
    assert server.raw(declared) == (413, {"detail": "the request body is over 65536 bytes"})
    chunk = b'{"question": "' + b"a" * 100_000
    chunked = (b"POST /ask HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    assert server.raw(chunked) == (413, {"detail": "the request body is over 65536 bytes"})
    assert server.client.get("/health").status_code == 200


def test_requests_made_from_the_schema_get_answers_the_schema_describes(server):
    """A few valid and invalid requests per operation, made by schemathesis from /openapi.json:
    no 5xx, and every answer has a status, content type and body that the schema documents. Not
    checked: that every schema-valid request is accepted, as a question of only spaces, or longer
    than the configured QA_MAX_QUESTION_CHARS, is valid JSON Schema but refused (422, saying why)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        takes_input = bool(operation.body) or any(True for _ in operation.iter_parameters())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,):
            @given(case=operation.as_strategy(mode))
            @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                try:
                    case.call_and_validate(excluded_checks=[positive_data_acceptance])
                except FailureGroup as group:  # a body over QA_MAX_REQUEST_BYTES is refused unread (413): a rejection too
                    if not all(isinstance(f, AcceptedNegativeData) and f.status_code == 413 for f in group.exceptions):
                        raise

            check()


def test_eight_clients_for_ten_seconds_all_answered(server):
    questions = [BORDER, TROOPS, "tokaiev moscou fevrier", "Why was Kazakh oil renamed?"]
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.monotonic() + 10

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            n = number
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    response = http.post("/ask", json={"question": questions[n % len(questions)]})
                    if response.status_code != 200 or "passages" not in response.json():
                        failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                latencies.append(time.perf_counter() - started)
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"\nload: {len(latencies)} requests by 8 clients in {elapsed:.1f} s: {len(latencies) / elapsed:.1f} requests/s, "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert len(latencies) >= 8


def test_an_index_that_cannot_be_opened_is_a_503_then_answers_again(server):
    pointer = server.settings.index / "CURRENT"
    build_name = pointer.read_text("utf-8")
    pointer.write_text("build-gone", "utf-8")
    try:
        response = server.client.post("/ask", json={"question": BORDER})
        assert response.status_code == 503 and "build-gone, which is missing" in response.json()["detail"]
    finally:
        pointer.write_text(build_name, "utf-8")
    assert server.client.post("/ask", json={"question": BORDER}).status_code == 200


def test_an_index_rebuilt_while_serving_answers_the_next_request(server, embedder):
    (server.settings.corpus / "aral.md").write_text(NEW_ARTICLE, "utf-8")
    assert server.client.get("/status").json()["stale"] == ["aral.md added"]
    build(server.settings, embedder)
    assert server.client.get("/status").json()["documents"] == 2
    assert "Aral" in [d["title"] for d in server.client.get("/documents").json()]
    answer = server.client.post("/ask", json={"question": "Depuis quand la mer d'Aral a-t-elle perdu sa surface ?",
                                              "articles": ["Aral"]}).json()
    assert answer["passages"][0]["document"] == "Aral" and "1960" in answer["answer_sentence"]


def test_docs_api_lists_every_operation_of_the_schema():
    described = (ROOT / "docs" / "api.md").read_text("utf-8")
    operations = [f"`{method.upper()} {re.sub(r'{[a-z_]+}', '{id}', path)}`"
                  for path, methods in create_app().openapi()["paths"].items() for method in methods]
    assert len(operations) == 10 and [o for o in operations if o not in described] == []
