"""Registry history, promote and rollback, and crash safety: a process SIGKILLed at every file-system
step of writing and promoting a version leaves a CURRENT that loads and serves."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from router_runtime import ArtifactError, ContractError, Router, current_version, list_versions, load_artifact, write_artifact
from router_runtime.registry import annotate_manifest, history, promote, rollback


def _copy_registry(src, dst):
    shutil.copytree(src, dst)
    return dst


def _new_version(reg, cost_weight):
    art = load_artifact(reg)
    doc = json.loads((reg / "versions" / art.version / "router.json").read_text())
    doc.update(version="")
    doc["policy"]["cost_weight"] = cost_weight
    return write_artifact(reg, doc, {"parent_version": art.version}).name


def test_promote_rollback_and_history(tmp_path, trained_registry):
    reg = _copy_registry(trained_registry, tmp_path / "reg")
    v1 = current_version(reg)
    v2 = _new_version(reg, 0.3)
    v3 = _new_version(reg, 0.6)
    assert promote(reg, v2, reason="better on holdout") == v1
    assert promote(reg, v3, reason="better again") == v2
    assert rollback(reg, reason="bad latency") == v2 and current_version(reg) == v2
    assert rollback(reg) == v1 and current_version(reg) == v1
    h = history(reg)
    assert [(e["action"], e["previous"], e["version"]) for e in h] == [
        ("promote", v1, v2), ("promote", v2, v3), ("rollback", v3, v2), ("rollback", v2, v1)]
    assert h[2]["reason"] == "bad latency"


def test_rollback_without_history_uses_the_parent(tmp_path, trained_registry):
    reg = _copy_registry(trained_registry, tmp_path / "reg")
    v1 = current_version(reg)
    v2 = _new_version(reg, 0.3)
    (reg / "CURRENT").write_text(v2 + "\n")  # moved by hand, no history line
    assert rollback(reg) == v1
    (reg / "CURRENT").write_text(v1 + "\n")
    with pytest.raises(ArtifactError, match="no earlier version"):
        rollback(reg)


def test_annotations_keep_the_artifact_loadable(tmp_path, trained_registry):
    reg = _copy_registry(trained_registry, tmp_path / "reg")
    vdir = reg / "versions" / current_version(reg)
    annotate_manifest(vdir, "promotion", {"promoted": False, "reason": "not better"})
    assert load_artifact(reg).manifest["promotion"]["reason"] == "not better"
    from router_runtime import ContractError

    with pytest.raises(ContractError, match="files"):
        annotate_manifest(vdir, "files", {})


CRASHER = textwrap.dedent('''
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from router_runtime import load_artifact, write_artifact
    from router_runtime.registry import promote
    reg, kill_at = sys.argv[1], int(sys.argv[2])
    calls = [0]
    def hook(fn):
        def wrapped(*a, **k):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return wrapped
    art = load_artifact(reg)
    doc = json.load(open(os.path.join(reg, "versions", art.version, "router.json")))
    doc["version"] = ""
    doc["policy"]["cost_weight"] = 0.42
    for name in ("replace", "rename", "fsync", "write", "mkdir"):
        setattr(os, name, hook(getattr(os, name)))
    path = write_artifact(reg, doc, {"parent_version": art.version})
    promote(reg, os.path.basename(path), reason="crash test")
    print("COMPLETED", calls[0])
''')


def test_sigkill_at_every_step_of_a_promotion_leaves_a_serving_current(tmp_path, trained_registry):
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    old = current_version(trained_registry)
    completed_at = None
    for kill_at in range(1, 60):
        reg = _copy_registry(trained_registry, tmp_path / f"reg{kill_at}")
        proc = subprocess.run([sys.executable, str(script), str(reg), str(kill_at), str(ROOT)],
                              capture_output=True, text=True, timeout=120)
        killed = proc.returncode == -signal.SIGKILL
        assert killed or proc.returncode == 0, proc.stderr
        cur = current_version(reg)
        art = load_artifact(reg)  # loads: CURRENT is never torn and never points at a partial version
        assert cur in (old, art.version) and art.version == cur
        d = Router.load(reg).decide("What is the boiling point of water at sea level?")
        assert d.model is not None and not d.fallback
        assert all(not v.startswith(".") for v in list_versions(reg))
        if not killed:
            completed_at = kill_at
            assert "COMPLETED" in proc.stdout and cur != old and art.policy.cost_weight == 0.42
            break
    assert completed_at is not None and completed_at > 5  # several kill points were exercised


def test_the_layout_helpers_name_every_place_of_the_registry(tmp_path):
    from router_runtime import registry as reg

    assert reg.version_dir(tmp_path, "v1") == tmp_path / "versions" / "v1"
    assert reg.current_file(tmp_path) == tmp_path / "CURRENT"
    assert reg.reports_dir(tmp_path) == tmp_path / "reports"
    assert reg.report_path(tmp_path, "v1") == tmp_path / "reports" / "v1.json"
    assert reg.history_file(tmp_path) == tmp_path / "HISTORY.jsonl"
    for bad in ("..", "a/b", ".hidden", ""):
        with pytest.raises(ContractError, match="plain version name"):
            reg.version_dir(tmp_path, bad)


def test_judge_validation_path_is_one_plain_file_per_judge(tmp_path):
    from router_runtime.registry import judge_validation_path, reports_dir

    plain = judge_validation_path(tmp_path, "qwen2.5-7b-instruct")
    assert plain == reports_dir(tmp_path) / "judge-validation-qwen2.5-7b-instruct.json"
    odd = [judge_validation_path(tmp_path, n) for n in ("org/model", "org_model", "llama3:8b", "..")]
    assert all(p.parent == reports_dir(tmp_path) for p in odd)           # never outside reports/
    assert len(set(odd)) == len(odd) and odd[1].name == "judge-validation-org_model.json"
    with pytest.raises(ContractError):
        judge_validation_path(tmp_path, "")
