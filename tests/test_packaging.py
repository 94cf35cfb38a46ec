"""citeqa installs like a Python package: a `citeqa` command, the package and its data in the wheel."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_the_citeqa_command_is_python_m_qa_from_any_folder(index_dir, tmp_path):
    citeqa = Path(sys.executable).parent / "citeqa"  # installed by `pip install -e .` (make does it)
    environment = {**os.environ, "QA_INDEX": str(index_dir)}
    result = subprocess.run([str(citeqa), "status", "--json"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["documents"], status["stale"], status["problem"]) == (1, [], None)  # the project's corpus/, seen from elsewhere


def test_the_wheel_holds_the_qa_package_its_models_and_the_citeqa_command(tmp_path):
    source = tmp_path / "source"  # a copy, so that building leaves nothing in the project
    shutil.copytree(ROOT / "qa", source / "qa", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt", "requirements-test.txt"):
        shutil.copy(ROOT / name, source)
    (source / "qa" / "models" / "reader" / "tokenizer").mkdir(parents=True, exist_ok=True)  # the reader model's folder, as it will ship
    (source / "qa" / "models" / "reader" / "manifest.json").write_text("{}")
    (source / "qa" / "models" / "reader" / "tokenizer" / "tokenizer.json").write_text("{}")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0 and not re.search(r"\w+Warning:", built.stderr), built.stderr  # no setuptools warning
    with zipfile.ZipFile(next((tmp_path / "dist").glob("citeqa-*.whl"))) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {"qa/__main__.py", "qa/tools/cli.py", "qa/models/sentence_model.json", "qa/models/reader/manifest.json",
            "qa/models/reader/tokenizer/tokenizer.json"} <= names
    assert not any(name.startswith(("tests/", "corpus/", "eval/", "index/", "app.py")) for name in names)
    assert "citeqa = qa.tools.cli:main" in entry_points
