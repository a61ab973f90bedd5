"""The Rasa tooling without Rasa: wheel METADATA patching, and train/serve driving a fake `rasa` command."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from nlu import rasa_server
from nlu.rasa_server import RasaPaths, RasaServerError

ROOT = Path(__file__).resolve().parents[2]

RASA_METADATA = textwrap.dedent(
    """\
    Metadata-Version: 2.1
    Name: rasa
    Version: 3.6.21
    Requires-Python: >=3.8,<3.11
    Requires-Dist: dask (==2022.10.2) ; python_version >= "3.8" and python_version < "3.11"
    Requires-Dist: matplotlib (>=3.1,<3.6)
    Requires-Dist: numpy (==1.22.3) ; sys_platform == "Windows" and python_version == "3.10"
    Requires-Dist: scipy (>=1.10.0,<1.11.0) ; python_version >= "3.8" and python_version < "3.11"
    Requires-Dist: tensorflow (==2.12.0) ; sys_platform != "darwin"

    Rasa Open Source
    """
)


def _patch_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "patch_wheel_metadata", ROOT / "scripts" / "patch_wheel_metadata.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metadata_patch() -> None:
    patched = _patch_module().patch_metadata(RASA_METADATA)
    assert "Requires-Python: <3.12,>=3.8" in patched
    assert 'python_version < "3.11"' not in patched
    assert patched.count('python_version < "3.12"') == 2
    assert "Requires-Dist: matplotlib (>=3.1,<3.7)" in patched
    assert 'python_version == "3.10"' in patched
    assert "Requires-Dist: tensorflow (==2.12.0)" in patched


def test_wheel_record_matches_patched_metadata(tmp_path: Path) -> None:
    src = tmp_path / "in" / "rasa-3.6.21-py3-none-any.whl"
    src.parent.mkdir()
    with zipfile.ZipFile(src, "w") as whl:
        whl.writestr("rasa/__init__.py", "")
        whl.writestr("rasa-3.6.21.dist-info/METADATA", RASA_METADATA)
        whl.writestr(
            "rasa-3.6.21.dist-info/RECORD",
            "rasa/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
            "rasa-3.6.21.dist-info/METADATA,sha256=stale,1\n"
            "rasa-3.6.21.dist-info/RECORD,,\n",
        )
    assert _patch_module().main([str(src), str(tmp_path / "out")]) == 0

    with zipfile.ZipFile(tmp_path / "out" / src.name) as whl:
        meta = whl.read("rasa-3.6.21.dist-info/METADATA")
        record = whl.read("rasa-3.6.21.dist-info/RECORD").decode().splitlines()
        assert whl.read("rasa/__init__.py") == b""
    digest = base64.urlsafe_b64encode(hashlib.sha256(meta).digest()).rstrip(b"=").decode()
    assert b"<3.12" in meta
    assert record == [
        "rasa/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0",
        f"rasa-3.6.21.dist-info/METADATA,sha256={digest},{len(meta)}",
        "rasa-3.6.21.dist-info/RECORD,,",
    ]


# A stand-in for `rasa`: `train` writes the model file, `run` serves /model/parse with http.server.
FAKE_RASA = """\
#!{python}
import http.server, json, sys
from pathlib import Path
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
if args[0] == "train":
    Path(opt("--out"), opt("--fixed-model-name") + ".tar.gz").write_text("model")
    Path(opt("--out"), "calls").open("a").write("train\\n")
    sys.exit(0)
if "{mode}" == "crash":
    print("rasa run: model broken")
    sys.exit(3)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        intent = {{"name": "greet", "confidence": 1.0}}
        answer = json.dumps({{"text": body["text"], "intent": intent}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

http.server.HTTPServer((opt("--interface"), int(opt("--port"))), Handler).serve_forever()
"""


def _fake_paths(tmp_path: Path, mode: str = "ok") -> RasaPaths:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    rasa = venv / "bin" / "rasa"
    rasa.write_text(FAKE_RASA.format(python=sys.executable, mode=mode))
    rasa.chmod(0o755)
    (venv / f".rasa-{rasa_server.RASA_VERSION}-installed").touch()
    project = tmp_path / "nlu"
    (project / "data").mkdir(parents=True)
    for name in rasa_server.PROJECT_FILES:
        (project / name).write_text(f"# {name}\n")
    return RasaPaths(venv=venv, project=project, models=tmp_path / "models")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_ready_needs_the_stamp(tmp_path: Path) -> None:
    paths = _fake_paths(tmp_path)
    assert paths.ready()
    (paths.venv / f".rasa-{rasa_server.RASA_VERSION}-installed").unlink()
    assert not paths.ready()


def test_train_once_per_project_version_and_drop_stale(tmp_path: Path) -> None:
    paths = _fake_paths(tmp_path)
    first = rasa_server.train(paths)
    again = rasa_server.train(paths)
    (paths.project / "data" / "nlu.yml").write_text("# changed\n")
    changed = rasa_server.train(paths)
    assert first == again != changed
    assert (paths.models / "calls").read_text() == "train\ntrain\n"
    assert sorted(p.name for p in paths.models.glob("*.tar.gz")) == [changed.name]


def test_train_failure_raises(tmp_path: Path) -> None:
    paths = _fake_paths(tmp_path)
    (paths.project / "config.yml").write_text("changed")
    paths.rasa.write_text("#!/bin/sh\necho 'InvalidConfigException'\nexit 1\n")
    with pytest.raises(RasaServerError, match="InvalidConfigException"):
        rasa_server.train(paths)


def test_serve_until_parsing_then_stop(tmp_path: Path) -> None:
    paths = _fake_paths(tmp_path)
    model = rasa_server.train(paths)
    with rasa_server.serve(paths, model, port=_free_port(), ready_timeout_s=30) as rasa:
        answer = httpx.post(f"{rasa.url}/model/parse", json={"text": "hoi"}).json()
    assert answer["intent"]["name"] == "greet"
    assert rasa.process.poll() is not None


def test_serve_reports_a_dying_server(tmp_path: Path) -> None:
    paths = _fake_paths(tmp_path, mode="crash")
    model = rasa_server.train(paths)
    with (
        pytest.raises(RasaServerError, match="model broken"),
        rasa_server.serve(paths, model, port=_free_port(), ready_timeout_s=30),
    ):
        pass


def test_cli_without_venv_says_how_to_build_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nlu.rasa_server", "train"],
        env={"RASA_VENV": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "scripts/rasa_venv.sh" in done.stderr
