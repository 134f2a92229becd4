"""Hostile artifacts (issue 15): numbers no field can hold, files that are not regular files, links
out of the registry, modes another user cannot read.  Each is checked through ``Router.load`` (a
precise ZetaError, rules serving) and through a running hot reload (refused, ``reload_error`` set,
the old version serving), and the CLI says so in one line."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from artifact_docs import make_doc, rewrite_router
from flows.cli import main
from router_runtime import Router, load_artifact, set_current, write_artifact
from router_runtime._atomic import atomic_write
from router_runtime.errors import ArtifactError, ZetaError
from conftest import wait_for


def _numeric_paths(v, at=()):
    """Every place in a JSON document that holds a number (bool excluded)."""
    if isinstance(v, bool):
        return
    if isinstance(v, (int, float)):
        yield at
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _numeric_paths(x, at + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _numeric_paths(x, at + (i,))


def _full_doc() -> dict:
    doc = make_doc()
    doc["pool"][1].update(context_length=4096, latency_ms={"intercept": 1.0, "per_char": 0.1})
    doc["policy"].update(quality_floor=0.0, typical_chars=100.0)
    return doc


def _with_literal(doc: dict, path: tuple, literal: str) -> str:
    d = json.loads(json.dumps(doc))
    t = d
    for k in path[:-1]:
        t = t[k]
    t[path[-1]] = "@@NUMBER@@"
    return json.dumps(d).replace('"@@NUMBER@@"', literal)


def _bad_current(reg, damage) -> str:
    """A new version damaged by ``damage(version_dir)``, CURRENT moved to it by hand (set_current
    would refuse it): what an operator's mistake or an attacker leaves for the reload thread."""
    doc = make_doc()
    doc["policy"]["cost_weight"] = 0.55
    vdir = write_artifact(reg, doc, {})
    damage(vdir)
    atomic_write(reg / "CURRENT", vdir.name + "\n")
    return vdir.name


@pytest.fixture
def served(reg, vdir):
    set_current(reg, vdir.name)
    router = Router.load(reg, reload_interval_ms=10)
    assert router.artifact_version == vdir.name
    return router


def _assert_refused_by_reload(router, good: str, word: str):
    assert wait_for(lambda: router.decide("ping").model is not None and router.reload_error is not None), \
        "the reload thread never reported the refusal"
    assert router.artifact_version == good
    assert word.lower() in router.reload_error.lower(), router.reload_error


# -- 5: numbers no field can hold ------------------------------------------------------------------

@pytest.mark.parametrize("digits", [400, 5000])
def test_a_huge_integer_in_any_numeric_field_is_a_zeta_error(vdir, digits):
    doc = _full_doc()
    paths = list(_numeric_paths(doc))
    assert len(paths) > 25  # every count, price, border, leaf, bound of the document
    for path in paths:
        rewrite_router(vdir, _with_literal(doc, path, "9" * digits))
        with pytest.raises(ArtifactError) as ei:
            load_artifact(vdir)
        where = ".".join(str(p) for p in path[:1]) if path else ""
        assert "out of range" in str(ei.value) and where in str(ei.value), (path, str(ei.value))
        router = Router.load(vdir)
        assert router.artifact is None and "out of range" in router.problem


def test_integers_up_to_int64_still_load_and_decide(vdir):
    # The bound is the one the engines can hold; every field keeps its own check below it.
    doc = _full_doc()
    for path in _numeric_paths(doc):
        rewrite_router(vdir, _with_literal(doc, path, str(2 ** 62)))
        try:
            load_artifact(vdir)
        except ZetaError:
            continue
        for engine in ("python", "compiled", "numpy"):
            assert Router.load(vdir, engine=engine).decide("hello def x", max_latency_ms=10.0) is not None


def test_a_huge_integer_in_the_manifest_is_a_zeta_error(vdir):
    man = (vdir / "manifest.json").read_text()
    (vdir / "manifest.json").write_text(man.replace('"manifest_version": 1', '"manifest_version": ' + "7" * 5000))
    with pytest.raises(ArtifactError, match="manifest_version is out of range"):
        load_artifact(vdir)


def test_hot_reload_refuses_a_huge_integer_and_says_why(reg, served):
    good = served.artifact_version
    _bad_current(reg, lambda v: rewrite_router(v, _with_literal(make_doc(), ("quality_model", "bias"), "9" * 400)))
    _assert_refused_by_reload(served, good, "out of range")


def test_cli_promote_and_route_print_one_line(reg, vdir, capsys):
    rewrite_router(vdir, _with_literal(make_doc(), ("policy", "cost_scale"), "9" * 5000))
    assert main(["artifacts", "promote", vdir.name, "--registry", str(reg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("zeta: error:") and "out of range" in err
    assert main(["route", "hello", "--artifact", str(vdir)]) == 3  # rules, with an empty pool: no model
    out = capsys.readouterr().out
    assert "out of range" in out and "Traceback" not in out


# -- 4: files that are not regular files -----------------------------------------------------------

def _within(seconds, fn):
    """fn() on a daemon thread; fails (instead of hanging the suite) when it does not return in time."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _zero(path):
    path.unlink()
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("name", ["router.json", "manifest.json"])
def test_a_fifo_in_a_version_is_refused_without_blocking(vdir, name):
    _fifo(vdir / name)
    router = _within(5, lambda: Router.load(vdir))
    assert router.artifact is None and "FIFO" in router.problem and name in router.problem


def test_a_dev_zero_link_is_refused_without_reading_it(vdir):
    _zero(vdir / "router.json")
    router = _within(5, lambda: Router.load(vdir))
    assert router.artifact is None and "symbolic link" in router.problem


@pytest.mark.skipif(not os.path.exists("/dev/null") or os.geteuid() != 0, reason="mknod needs root")
def test_a_device_node_is_refused(vdir):
    (vdir / "router.json").unlink()
    os.mknod(vdir / "router.json", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    router = _within(5, lambda: Router.load(vdir))
    assert router.artifact is None and "character device" in router.problem


def test_a_fifo_as_current_is_refused_without_blocking(reg, vdir):
    set_current(reg, vdir.name)
    _fifo(reg / "CURRENT")
    router = _within(5, lambda: Router.load(reg))
    assert router.artifact is None and "FIFO" in router.problem


@pytest.mark.parametrize("damage", [lambda v: _fifo(v / "router.json"), lambda v: _fifo(v / "manifest.json"),
                                    lambda v: _zero(v / "router.json")], ids=["fifo-router", "fifo-manifest", "zero"])
def test_hot_reload_refuses_special_files_and_keeps_reloading(reg, served, damage):
    good = served.artifact_version
    _bad_current(reg, damage)
    _assert_refused_by_reload(served, good, "not a regular file")
    # The reload lock was not left held by a blocked open: the next good version swaps in.
    doc = make_doc()
    doc["policy"]["cost_weight"] = 0.33
    fresh = write_artifact(reg, doc, {}).name
    set_current(reg, fresh)
    assert _within(5, served.reload) is True and served.artifact_version == fresh


def test_a_file_above_the_size_cap_is_refused(vdir, monkeypatch):
    import router_runtime.artifact as artifact_mod

    size = (vdir / "router.json").stat().st_size
    monkeypatch.setattr(artifact_mod, "MAX_ARTIFACT_BYTES", size - 1)
    with pytest.raises(ArtifactError, match="limit"):
        load_artifact(vdir)


# -- 17: links out of the registry -----------------------------------------------------------------

def test_a_version_file_linked_out_of_the_registry_is_refused(tmp_path, vdir):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (vdir / "router.json").rename(outside / "router.json")  # same bytes: the hash still matches
    (vdir / "router.json").symlink_to(outside / "router.json")
    router = Router.load(vdir)
    assert router.artifact is None and "symbolic link" in router.problem


def test_a_version_directory_linked_out_of_the_registry_is_refused(tmp_path, reg, vdir):
    outside = tmp_path / "elsewhere"
    vdir.rename(outside)
    vdir.symlink_to(outside, target_is_directory=True)
    atomic_write(reg / "CURRENT", vdir.name + "\n")
    router = Router.load(reg)
    assert router.artifact is None and "link out of the registry" in router.problem


def test_a_version_directory_linked_inside_the_registry_still_loads(reg, vdir):
    alias = vdir.parent / "alias"
    alias.symlink_to(vdir.name, target_is_directory=True)
    atomic_write(reg / "CURRENT", "alias\n")
    assert Router.load(reg).artifact_version == vdir.name


def test_hot_reload_refuses_a_link_out_of_the_registry(tmp_path, reg, served):
    good = served.artifact_version
    outside = tmp_path / "elsewhere"

    def move_out(v):
        v.rename(outside)
        v.symlink_to(outside, target_is_directory=True)

    _bad_current(reg, move_out)
    _assert_refused_by_reload(served, good, "link out of the registry")


# -- 15: modes another user can read ---------------------------------------------------------------

def test_a_new_version_is_readable_by_another_user(reg):
    old = os.umask(0o077)  # the strictest umask a pipeline might run under does not leak into it
    try:
        vdir = write_artifact(reg, make_doc(), {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(vdir.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in vdir.iterdir()} == \
        {"router.json": 0o644, "manifest.json": 0o644}


def _reachable_by_others(path: str) -> bool:
    """Whether a user with no rights of its own can read ``path`` (symlinks followed): the file readable
    by others and every directory above it searchable by others."""
    import stat

    real = os.path.realpath(path)
    try:
        if not os.stat(real).st_mode & stat.S_IROTH:
            return False
        d = os.path.dirname(real)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == os.path.dirname(d):
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="switching user needs root")
def test_a_runtime_under_another_user_loads_the_version(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for needed in (sys.executable, os.path.join(root, "router_runtime", "__init__.py")):
        if not _reachable_by_others(needed):
            # A checkout or interpreter under a 0700 directory (mktemp, /root): the other user could
            # not even start Python, which says nothing about the registry's modes.
            pytest.skip(f"{needed} is not reachable by another user on this machine")

    base = tmp_path / "shared"
    base.mkdir()
    for p in (base, *base.parents):  # pytest's own tmp dirs are 0700: open the way to the registry only
        if p == p.parent:
            break
        os.chmod(p, os.stat(p).st_mode | 0o005)
    reg = base / "reg"
    vdir = write_artifact(reg, make_doc(), {})
    set_current(reg, vdir.name)
    code = "import sys; from router_runtime import Router; r = Router.load(sys.argv[1]); print(r.artifact_version, r.problem)"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code, str(reg)], capture_output=True, text=True, timeout=60,
                         cwd=root, user=65534, group=65534, env={"PYTHONPATH": root, "PATH": os.environ["PATH"]})
    assert out.stdout.split() == [vdir.name, "None"], out.stderr
