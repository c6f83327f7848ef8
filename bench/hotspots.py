"""Summarize a py-spy raw profile (`py-spy record -f raw`): where the samples go, by function.

    python bench/hotspots.py profile.txt [--within FUNCTION] [--top 25]

`--within` keeps only the stacks passing through a function whose name contains the text (e.g. `_run` for
an exporter's background thread, `export` for the caller's thread). For each function: inclusive share
(samples in which it is on the stack) and self share (samples in which it is the innermost frame).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Hotspot", "read_profile", "summarize"]

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True, slots=True)
class Hotspot:
    function: str
    inclusive: float
    """Share of the (filtered) samples with this function on the stack."""
    self_share: float


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "/bench/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('name')} ({path})"


def read_profile(path: str | Path) -> list[tuple[list[str], int]]:
    """(frames outermost first, sample count) per line of a py-spy raw profile."""
    stacks: list[tuple[list[str], int]] = []
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if stack.startswith("process ") and '";' in stack:
            # `--subprocesses` prefixes each stack with the process and its command line, which may hold `;`.
            stack = stack.split('";', 1)[1]
        stacks.append(([_frame_name(f) for f in stack.split(";")], int(count)))
    return stacks


def summarize(
    stacks: list[tuple[list[str], int]], within: str | None = None, top: int = 25
) -> tuple[int, list[Hotspot]]:
    """(samples kept, the top functions by inclusive share)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        if within is not None:
            index = next((i for i, f in enumerate(frames) if within in f.split(" (", 1)[0]), None)
            if index is None:
                continue
            frames = frames[index:]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    if not total:
        return 0, []
    ranked = sorted(inclusive, key=lambda n: (-inclusive[n], -own[n]))[:top]
    return total, [Hotspot(n, inclusive[n] / total, own[n] / total) for n in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--within", default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by-self", action="store_true", help="rank by self share instead")
    args = parser.parse_args()
    total, spots = summarize(read_profile(args.profile), args.within, top=10_000 if args.by_self else args.top)
    if args.by_self:
        spots = sorted(spots, key=lambda h: -h.self_share)[: args.top]
    print(f"{total} samples" + (f" within {args.within}" if args.within else ""))
    print(f"{'incl%':>6} {'self%':>6}  function")
    for spot in spots:
        print(f"{spot.inclusive * 100:6.1f} {spot.self_share * 100:6.1f}  {spot.function}")


if __name__ == "__main__":
    main()
