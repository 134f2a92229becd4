"""Issue 15, items 1 and 9, against real llama.cpp: `zeta serve` (a subprocess, so a crash cannot take
pytest down) over a pool whose GGUF files are changed under it.

- 1: a loaded model's GGUF truncated, then rewritten, in place: llama.cpp's memory map would fault
  (SIGBUS, the whole server gone); the server must notice the change before touching the mapping,
  keep running, keep the other model serving, and serve the model again once a good file is back.
- 9: a corrupt GGUF and a model larger than the whole memory budget are out of the pool (shown in
  /health) until their file changes: no request spends a fallback hop on them.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from llama_models import gemma3_path, require_llama_cpp, smollm2_path, zeta_serve

ROOT = Path(__file__).resolve().parents[2]
POOL_TOML = """\
[[models]]
name = "smol"                 # a private copy: the test cuts and rewrites it
capabilities = ["chat"]
context_length = 512
gguf = "smol.gguf"
ms_per_token = 1.0
llama_options = {{ n_threads = 1 }}

[[models]]
name = "gemma"
capabilities = ["chat"]
context_length = 512
gguf = "{gemma}"
ms_per_token = 10.0
llama_options = {{ n_threads = 1 }}

[[models]]
name = "corrupt"              # the largest reason-capable model: the rules pick it for kind "reason"
capabilities = ["chat", "reason"]
size_b = 14.0
context_length = 512
gguf = "corrupt.gguf"
ms_per_token = 0.5

[[models]]
name = "huge"                 # a real file, declared larger than the whole budget
capabilities = ["chat", "reason"]
size_b = 7.0
context_length = 512
gguf = "{smol}"
memory_mb = 1000000
ms_per_token = 0.1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_llama_cpp()
    d = tmp_path_factory.mktemp("pool")
    smol, gemma = smollm2_path(), gemma3_path(tmp_path_factory.mktemp("gguf"))
    shutil.copyfile(smol, d / "smol.gguf")
    (d / "corrupt.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00garbage" * 64)
    (d / "pool.toml").write_text(POOL_TOML.format(smol=smol, gemma=gemma), encoding="utf-8")
    out = d / "server.log"
    cmd = [str(d / "pool.toml"), "--log-dir", str(d / "logs"), "--artifact", str(d / "none"), "--memory-budget-mb",
           "2000", "--cooldown-s", "600", "--timeout-s", "120", "--log-level", "warning"]
    with zeta_serve(cmd, out, root=ROOT) as (base, proc):
        yield {"base": base, "proc": proc, "dir": d, "smol": smol, "out": out}


def call(server, method, path, body=None):
    req = urllib.request.Request(server["base"] + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as exc:  # the server is gone: say how it ended
        code = server["proc"].poll()
        pytest.fail(f"server unreachable ({exc}); exit code {code} (-7 = SIGBUS):\n"
                    f"{server['out'].read_text(errors='replace')[-2000:]}")


def chat(server, model="auto", **zeta):
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}
    if zeta:
        body["zeta"] = zeta
    return call(server, "POST", "/v1/chat/completions", body)


def test_1_a_gguf_cut_and_rewritten_in_place_while_loaded(server):
    path = server["dir"] / "smol.gguf"
    status, body = chat(server, "smol")
    assert status == 200 and body["model"] == "smol"
    original = path.read_bytes()
    os.truncate(path, len(original) // 3)  # in place: same inode, the mapping now ends early
    status, body = chat(server, "smol")
    assert server["proc"].poll() is None, "the server died"
    assert status == 503 and body["error"]["code"] == "model_unavailable", body
    assert "failed to load" in body["error"]["message"]
    status, body = chat(server, "gemma")  # the other model keeps serving
    assert status == 200 and body["model"] == "gemma"
    _, health = call(server, "GET", "/health")
    assert "failed to load" in health["models"]["smol"]["unavailable"]
    assert health["models"]["smol"]["file_changes"] >= 1
    with open(path, "r+b") as f:  # rewritten in place with the good bytes: a changed file, tried again
        f.write(original)
    status, body = chat(server, "smol")
    assert status == 200 and body["model"] == "smol"
    # The safe replacement: a new file renamed over the old one, while loaded.
    tmp = path.with_suffix(".new")
    tmp.write_bytes(original)
    os.replace(tmp, path)
    status, body = chat(server, "smol")
    assert status == 200 and body["model"] == "smol" and server["proc"].poll() is None


def test_9_permanent_failures_leave_the_pool_until_their_file_changes(server):
    # The rules rank the reason-capable models, largest first: both fail, for good.
    status, body = chat(server, kind="reason")
    assert status == 503 and body["error"]["code"] == "model_unavailable", body
    status, body = chat(server, kind="reason")
    status2, body2 = chat(server, kind="reason")
    tried = [a["model"] for a in body["zeta"]["attempts"] + body2["zeta"]["attempts"]]
    assert status == status2 == 200 and not {"corrupt", "huge"} & set(tried), tried  # no hop spent on them
    status, body = chat(server, "huge")
    assert status == 503 and "more than the whole memory budget" in body["error"]["message"]
    _, health = call(server, "GET", "/health")
    assert "failed to load" in health["models"]["corrupt"]["unavailable"]
    assert "memory budget" in health["models"]["huge"]["unavailable"]
    assert not health["models"]["corrupt"]["cooling_down"] and health["status"] == "degraded"
    excluded = body2["zeta"]["excluded"]
    assert "until its file changes" in excluded["corrupt"] and "until its file changes" in excluded["huge"]
    # A new file: back in the pool (a good GGUF renamed over the corrupt one).
    good = server["dir"] / "corrupt.new"
    shutil.copyfile(server["smol"], good)
    os.replace(good, server["dir"] / "corrupt.gguf")
    _, health = call(server, "GET", "/health")
    assert health["models"]["corrupt"]["unavailable"] is None
    status, body = chat(server, "corrupt")
    assert status == 200 and body["model"] == "corrupt"
