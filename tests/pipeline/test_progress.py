"""Progress bars of the long commands (flows/progress.py): drawn on stderr when it is a terminal or
with --progress, never when piped or under --json unless asked, never on stdout, off with
--no-progress / ZETA_NO_PROGRESS=1."""

from __future__ import annotations

import io
import json
import re
import sys

import numpy as np
import pytest

from conftest import SAMPLE
from flows import progress
from flows.cli import main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _off_after():
    yield
    progress.disable()


def test_wanted_follows_the_flags_the_terminal_and_the_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV_OFF, raising=False)
    tty, pipe = Terminal(), io.StringIO()
    assert progress.wanted(None, stream=tty) and not progress.wanted(None, stream=pipe)
    assert not progress.wanted(None, json_output=True, stream=tty)
    assert progress.wanted(True, stream=pipe) and progress.wanted(True, json_output=True, stream=pipe)
    assert not progress.wanted(False, stream=tty)
    monkeypatch.setenv(progress.ENV_OFF, "1")
    assert not progress.wanted(True, stream=tty) and not progress.wanted(None, stream=tty)


def test_a_bar_redraws_one_line_on_a_terminal_and_writes_tenths_elsewhere():
    tty = Terminal()
    with progress.Bar("work", 4, stream=tty) as b:
        for i in range(4):
            b.advance(note=f"item {i}")
    text = tty.getvalue()
    assert text.startswith("\r\x1b[K") and text.endswith("\n") and text.count("\n") == 1
    assert "work [" + "#" * 28 + "] 4/4 100%" in text and "item 3" in text
    log = io.StringIO()
    with progress.Bar("work", 100, stream=log) as b:
        for _ in range(100):
            b.advance()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11  # the start, then each tenth
    assert lines[0].startswith("work [....") and " 0/100 " in lines[0] and " 100/100 100%" in lines[-1]


def test_a_silent_bar_draws_nothing_and_a_closed_stream_breaks_nothing():
    assert not progress.enabled()
    progress.bar("work", 3).advance()  # no stream: a no-op
    dead = Terminal()
    dead.close()
    b = progress.Bar("work", 3, stream=dead)
    b.advance()
    b.close()


def test_catboost_training_reports_its_trees_and_fits_the_same_model():
    from catboost import CatBoostRegressor, Pool

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.normal(size=200)

    def fitted():
        m = CatBoostRegressor(iterations=20, depth=3, random_seed=0, thread_count=1, verbose=0,
                              allow_writing_files=False)
        progress.fit_catboost(m, Pool(x, y), "trees", 20)
        return m.predict(x)

    plain = fitted()
    tty = Terminal()
    progress.enable(tty)
    shown = fitted()
    assert np.array_equal(plain, shown)
    assert "trees [" + "#" * 28 + "] 20/20 100%" in tty.getvalue()


def _simulate(tmp_path, *flags):
    return main(["simulate-logs", str(SAMPLE / "routeprofile"), "--format", "routeprofile",
                 "--out", str(tmp_path / "logs"), *flags])


def test_simulate_logs_draws_on_a_terminal_not_on_a_pipe(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(progress.ENV_OFF, raising=False)
    assert _simulate(tmp_path) == 0  # capsys: stderr is not a terminal
    piped = capsys.readouterr()
    assert "simulating logs" not in piped.err and piped.out.startswith("wrote ")
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    assert _simulate(tmp_path) == 0
    assert "simulating logs (records) [" + "#" * 28 + "]" in tty.getvalue()
    assert capsys.readouterr().out == piped.out  # stdout is what it was
    assert not progress.enabled()  # main() switched it off again
    monkeypatch.setenv(progress.ENV_OFF, "1")
    tty.truncate(0)
    assert _simulate(tmp_path) == 0 and tty.getvalue() == ""
    monkeypatch.delenv(progress.ENV_OFF)
    assert _simulate(tmp_path, "--no-progress") == 0 and tty.getvalue() == ""


def test_progress_flag_draws_into_a_pipe_too(tmp_path, capsys):
    assert _simulate(tmp_path, "--progress") == 0
    err = capsys.readouterr().err
    assert "simulating logs (records) [....." in err and "100%" in err


def test_json_output_stays_json_and_shows_no_bar_unless_asked(tmp_path, capsys, monkeypatch):
    """zeta calibrate --dry-run --json: on a terminal it draws nothing; with --progress, on a real GGUF
    (SmolLM2), it draws on stderr while stdout stays one JSON document."""
    from llama_models import require_llama_cpp, smollm2_path

    monkeypatch.delenv(progress.ENV_OFF, raising=False)
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    routing_only = tmp_path / "routing.toml"
    routing_only.write_text('[[models]]\nname = "smol"\n')
    assert main(["calibrate", str(routing_only), "--dry-run", "--json"]) == 0
    assert tty.getvalue() == "" and json.loads(capsys.readouterr().out) == {}

    require_llama_cpp()
    pool = tmp_path / "pool.toml"
    pool.write_text(f'[[models]]\nname = "smol"\ngguf = "{smollm2_path()}"\ncontext_length = 2048\n')
    assert main(["calibrate", str(pool), "--dry-run", "--json", "--progress", "--prompt-tokens", "4",
                 "--gen-tokens", "1", "--repeats", "1", "--max-rounds", "1", "--threads", "1"]) == 0
    assert re.search(r"calibrating \(models\) \[#{28}\] 1/1 100% \S+  smol\n$", tty.getvalue())
    assert list(json.loads(capsys.readouterr().out)) == ["smol"]


def test_shadow_replay_and_the_judge_report_their_steps(tmp_path):
    import test_judge as tj
    import test_shadow as ts

    from flows.judge.flow import judge_run
    from flows.judge.grader import Judge
    from flows.logs import read_outcome_logs

    tty = Terminal()
    progress.enable(tty)
    logs = ts.write_logs(tmp_path / "shadow-logs", [ts.rec(i) for i in range(6)])
    plan, res = ts.replay(logs, ts.FunctionBackend(ts.echo), rate=1.0)
    runs = sum(len(r) for _, r in plan.by_model())
    assert runs > 0 and res.succeeded == runs
    assert re.search(rf"shadow replay \(runs\) \[#{{28}}\] {runs}/{runs} 100% \S+  coder\n$", tty.getvalue())

    tty.truncate(0)
    tty.seek(0)
    jlogs = tj.write_logs(tmp_path, [tj.rec(i, m, response=f"answer {i}") for i in range(4) for m in ("small", "big")])
    s = judge_run(str(jlogs), Judge(tj.scorer(lambda text: '{"score": 4}'), tj.JUDGE), read_outcome_logs(jlogs))
    assert s["graded"] == 8
    assert re.search(r"judging \(answers\) \[#{28}\] 8/8 100%", tty.getvalue())
