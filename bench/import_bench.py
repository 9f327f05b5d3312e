"""How long importing a skill takes: parse, build the dataset, count tokens.

    uv run python bench/import_bench.py [CORPUS_DIR] [--repeat N]

The baseline, run in the same process on the same files, is the least any importer does: read the
bytes, decode, and `yaml.safe_load` the frontmatter. Figures are reported as milliseconds and as a
ratio to that baseline, so they compare across machines.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import build_dataset
from skill_adapter.datasets.stats import dataset_stats
from skill_adapter.skills import load_skill_path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "skills"


def baseline(path: Path) -> object:
    text = path.read_bytes().decode("utf-8-sig")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        return yaml.safe_load(text[3:end]) if end > 0 else None
    return None


def full_import(path: Path) -> object:
    skill = load_skill_path(path)
    dataset = build_dataset(skill, seed=42)
    return dataset_stats(dataset, tokenizer_json=TINY_MODEL_DIR / "tokenizer.json", max_seq_length=2048)


def best_of(fn: Callable[[Path], object], path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = sorted(args.corpus.rglob("SKILL.md"))
    full_import(files[0])  # warm the tokenizer cache and imports
    print(f"{'skill':<28} {'KB':>6} {'baseline ms':>12} {'import ms':>10} {'parse ms':>9} {'ratio':>7}")
    ratios, imports = [], []
    for path in files:
        base = best_of(baseline, path, args.repeat)
        parse = best_of(load_skill_path, path, args.repeat)
        total = best_of(full_import, path, args.repeat)
        ratios.append(total / base)
        imports.append(total)
        print(
            f"{path.parent.name:<28} {path.stat().st_size / 1024:6.1f} {base * 1e3:12.2f} {total * 1e3:10.2f} "
            f"{parse * 1e3:9.2f} {total / base:7.1f}"
        )
    print(
        f"\n{len(files)} skills: import median {statistics.median(imports) * 1e3:.1f} ms, "
        f"max {max(imports) * 1e3:.1f} ms; ratio to baseline median {statistics.median(ratios):.1f}x, "
        f"max {max(ratios):.1f}x"
    )


if __name__ == "__main__":
    main()
