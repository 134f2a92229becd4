"""Regenerate data/sample/ from the full data sets (see data/README.md).

    python data/make_sample.py [--source ../shared/data] [--out data/sample]

Deterministic: the same input gives byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def make_sample(source: Path, out: Path) -> None:
    rp_in, rp_out = source / "routeprofile", out / "routeprofile"
    dc_in, dc_out = source / "llmrouter_dcrouter", out / "dcrouter"
    rp_out.mkdir(parents=True, exist_ok=True)
    dc_out.mkdir(parents=True, exist_ok=True)

    # All 600 queries; the answers' text is dropped: it is most of the size and no importer uses it.
    rows = _read_json(rp_in / "routing_test_data.json")
    for row in rows:
        for cell in row["model_performance"].values():
            cell.pop("response", None)
    _write_json(rows, rp_out / "routing_test_data.json")
    shutil.copyfile(rp_in / "candidate_models.json", rp_out / "candidate_models.json")

    # The first rows of each split, unchanged.
    _write_json(_read_json(dc_in / "train.json")[:1200], dc_out / "train.json")
    _write_json(_read_json(dc_in / "test.json")[:300], dc_out / "test.json")
    shutil.copyfile(dc_in / "default_llm.json", dc_out / "default_llm.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "sample")
    args = parser.parse_args(argv)
    make_sample(args.source, args.out)


if __name__ == "__main__":
    main()
