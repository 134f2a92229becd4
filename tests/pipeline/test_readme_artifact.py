"""The README's Prefect artifact is a real one: its commands, run again, publish the same markdown
(version names and times aside) as the `zeta-pipeline-report` artifact, and the same per-model table."""

from __future__ import annotations

import asyncio
import json
import re

from conftest import ROOT, SAMPLE
from flows.cli import main

VERSION = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def _readme_block(after: str, opening: str, closing: str) -> str:
    """The text between ``opening`` and ``closing`` (fence lines), first after ``after`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(opening, text.index(after)) + len(opening)
    return text[start:text.index(closing, start)].strip("\n")


async def _newest(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                           sort=ArtifactSort.CREATED_DESC, limit=1)
    return arts[0]


def test_the_readme_artifact_is_what_its_commands_publish(tmp_path, monkeypatch, prefect_harness, capsys):
    monkeypatch.chdir(tmp_path)
    dc = str(SAMPLE / "dcrouter")
    assert main(["simulate-logs", dc, "--format", "dcrouter", "--out", "demo/logs/"]) == 0
    assert main(["pipeline", "--logs", "demo/logs/", "--registry", "demo/artifacts"]) == 0
    assert main(["simulate-logs", dc, "--format", "dcrouter", "--policy", "artifact", "--artifact", "demo/artifacts",
                 "--exploration-rate", "0.3", "--out", "demo/logs/", "--seed", "1"]) == 0
    assert main(["pipeline", "--logs", "demo/logs/", "--registry", "demo/artifacts"]) == 0
    capsys.readouterr()

    report = asyncio.run(_newest("zeta-pipeline-report"))
    shown = _readme_block("its markdown artifact `zeta-pipeline-report`", "````markdown\n", "\n````\n")
    assert VERSION.sub("V", report.data.strip("\n")) == VERSION.sub("V", shown)
    line = _readme_block("The second cycle's log line and state message", "```\n", "\n```\n")
    assert VERSION.sub("V", report.description) == VERSION.sub("V", line)

    rows = json.loads(asyncio.run(_newest("zeta-pipeline-models")).data)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for r in rows[:3]:
        assert "| " + " | ".join(str(v) for v in r.values()) + " |" in readme
