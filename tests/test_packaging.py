"""citeqa installs like a Python package: a `citeqa` command, the package and its data in the wheel,
and an installed wheel that answers from anywhere, keeping its files in the user's folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import ROOT
from qa.locations import BUNDLED_CORPUS, Locations, default_locations
from streamlit_server import free_port, streamlit_server

BUNDLED_ARTICLE = "qa/bundled_corpus/relations-kazakhstan-russie.txt"


def test_the_citeqa_command_is_python_m_qa_from_any_folder(index_dir, tmp_path):
    citeqa = Path(sys.executable).parent / "citeqa"  # installed by `pip install -e .` (make does it)
    environment = {**os.environ, "QA_INDEX": str(index_dir)}
    result = subprocess.run([str(citeqa), "status", "--json"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["documents"], status["stale"], status["problem"]) == (1, [], None)  # the project's corpus/, seen from elsewhere


def test_in_a_checkout_the_files_are_those_of_the_project_folder(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    assert default_locations(tmp_path) == Locations(tmp_path / "corpus", tmp_path / "index", tmp_path / ".cache" / "models",
                                                    tmp_path / "feedback.jsonl", tmp_path / ".cache" / "jobs", tmp_path / ".cache" / "conversations")


def test_installed_the_article_is_the_bundled_one_and_the_rest_goes_in_the_users_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "site-packages" / "corpus").mkdir(parents=True)  # a folder named corpus/ alone is no checkout
    assert default_locations(tmp_path / "site-packages") == Locations(
        BUNDLED_CORPUS, tmp_path / "data" / "citeqa" / "index", tmp_path / "cache" / "citeqa" / "models",
        tmp_path / "data" / "citeqa" / "feedback.jsonl", tmp_path / "data" / "citeqa" / "jobs", tmp_path / "data" / "citeqa" / "conversations")


def project_copy(folder: Path) -> Path:
    """The files a wheel is built from, copied into ``folder``, so that building leaves nothing in the project."""
    shutil.copytree(ROOT / "qa", folder / "qa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    for name in ("pyproject.toml", "README.md", "requirements.txt", "requirements-test.txt"):
        shutil.copy(ROOT / name, folder)
    return folder


def built_wheel(source: Path, dist: Path) -> Path:
    """The wheel of ``source``, built without downloading anything; no setuptools warning."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0 and not re.search(r"\w+Warning:", built.stderr), built.stderr
    return next(dist.glob("citeqa-*.whl"))


def test_the_wheel_holds_the_qa_package_its_models_the_bundled_article_and_the_citeqa_command(tmp_path):
    source = project_copy(tmp_path / "source")
    (source / "qa" / "models" / "reader" / "tokenizer").mkdir(parents=True, exist_ok=True)  # the reader model's folder, as it will ship
    (source / "qa" / "models" / "reader" / "manifest.json").write_text("{}")
    (source / "qa" / "models" / "reader" / "tokenizer" / "tokenizer.json").write_text("{}")
    (source / "corpus" / "another-article.txt").write_text("Un article ajouté dans ce dossier-ci.")  # not shipped
    with zipfile.ZipFile(built_wheel(source, tmp_path / "dist")) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        article = wheel.read(BUNDLED_ARTICLE)
    assert {"qa/__main__.py", "qa/tools/cli.py", "qa/chat_app.py", "qa/models/sentence_model.json", "qa/models/reader/manifest.json",
            "qa/models/reader/tokenizer/tokenizer.json", BUNDLED_ARTICLE} <= names
    assert article == (ROOT / "corpus" / "relations-kazakhstan-russie.txt").read_bytes()  # the checkout's corpus/ is its one source
    assert not any(name.startswith(("tests/", "corpus/", "eval/", "index/", "app.py")) or "another-article" in name for name in names)
    assert "citeqa = qa.tools.cli:main" in entry_points


def test_an_installed_wheel_answers_from_anywhere_and_keeps_its_index_in_the_users_folders(tmp_path):
    wheel = built_wheel(project_copy(tmp_path / "source"), tmp_path / "dist")
    environment = tmp_path / "venv"  # outside the checkout, with nothing of it but the wheel
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    packages = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip())
    (packages / "dependencies.pth").write_text(site.getsitepackages()[0] + "\n")  # torch & co. of this venv, after the wheel was installed
    home = tmp_path / "home"
    # neither QA_* settings nor a PYTHONPATH naming the checkout, whose qa would be imported instead of the wheel's
    variables = {name: value for name, value in os.environ.items() if not name.startswith("QA_") and name != "PYTHONPATH"}
    variables.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "config"))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    checkout_index = sorted((ROOT / "index").rglob("*"))

    def citeqa(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(environment / "bin" / "citeqa"), *arguments], cwd=cwd, env=variables, capture_output=True, text=True, timeout=timeout)

    missing = citeqa("status")  # before anything: the command to run is named as the user runs it
    assert missing.returncode == 1 and "build it with `citeqa build`" in missing.stdout, missing.stdout
    first = citeqa("ask", "Quelle est la longueur de la frontière ?", timeout=900)  # converts the model, builds the index, then answers
    assert first.returncode == 0, first.stderr
    assert "no index yet" in first.stderr and "(first use)" in first.stderr and "embedding [####" in first.stderr, first.stderr
    assert re.search(r"6[  ]?846", first.stdout), first.stdout
    status = citeqa("status", "--json")
    assert status.returncode == 0, status.stderr
    status = json.loads(status.stdout)
    assert (status["documents"], status["stale"], status["problem"]) == (1, [], None)  # the bundled article
    assert Path(status["index"]) == home / "data" / "citeqa" / "index"
    assert (home / "data" / "citeqa" / "index" / "CURRENT").is_file() and (home / "cache" / "citeqa" / "models").is_dir()
    asked = citeqa("ask", "Quelle est la longueur de la frontière ?")
    assert asked.returncode == 0, asked.stderr
    assert re.search(r"6[  ]?846", asked.stdout), asked.stdout
    assert not any(path.name in ("index", ".cache", "feedback.jsonl") for path in packages.iterdir())  # nothing written in site-packages
    assert sorted((ROOT / "index").rglob("*")) == checkout_index and not any(cwd.iterdir())  # nor in the checkout, nor here

    port = free_port()  # `citeqa chat` starts Streamlit on the installed page, passing it its options
    chat = [str(environment / "bin" / "citeqa"), "chat", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"]
    with streamlit_server(chat, port, cwd, variables, home / "chat.log"):
        pass  # up: its health endpoint answered on the port given
