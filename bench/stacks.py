"""Summarise a py-spy profile (``--format raw``: collapsed stacks) by where the CPU went.

    .venv/bin/python bench/stacks.py prof/worker.txt --alerts 300 --rate 250

Prints the samples by the package of the innermost frame (self time: sqlalchemy, asyncpg,
our core, ...), the project functions with the most samples under them (inclusive: the
jobs, services and repositories that cost the most), and the hottest innermost functions.
With ``--alerts`` and ``--rate`` (py-spy's samples per second) samples become CPU
milliseconds per alert. Samples waiting in the event loop's ``select`` are left out (idle).
SQLAlchemy's async ORM runs its work in greenlets, which py-spy shows as stacks of their
own, rooted at the ORM call rather than at the project code that made it.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+|<[^>]+>)(?::\d+)?\)$")
PROJECT = ("core/", "workers/", "webhook_server/", "bot/")
IDLE_LEAVES = ("select (selectors.py", "EpollSelector.select (selectors.py")


def parse(path: Path) -> list[tuple[list[str], int]]:
    """The stacks (outermost frame first) and their sample counts."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if count.isdigit():  # no frames: the sampled thread ran no Python code (C, the GIL)
            stacks.append((frames.split(";") if frames else ["<no Python frame>"], int(count)))
    return stacks


def package(frame: str) -> str:
    """``core.services``, ``sqlalchemy``, ``asyncio``... of a frame."""
    match = _FRAME.match(frame)
    file = match.group("file") if match else frame
    if file.startswith("<"):
        return file
    parts = file.split("/")
    if file.startswith(PROJECT) and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0].removesuffix(".py")


def function(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match.group('function')} ({match.group('file')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--alerts", type=int, help="alerts executed while sampling")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    stacks = [
        (frames, count)
        for frames, count in parse(args.profile)
        if not frames[-1].startswith(IDLE_LEAVES)
    ]
    total = sum(count for _, count in stacks)
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        by_package[package(frames[-1])] += count
        leaves[function(frames[-1])] += count
        seen = {
            function(f) for f in frames if _FRAME.match(f) and f.split("(")[-1].startswith(PROJECT)
        }
        for name in seen:
            inclusive[name] += count

    def cost(samples: int) -> str:
        share = f"{samples * 100 / total:5.1f} %"
        if args.alerts:
            return f"{share}  {samples * 1000 / args.rate / args.alerts:6.2f} ms/alert"
        return share

    print(f"{total} busy samples ({total / args.rate:.2f} s of CPU at {args.rate} Hz)")
    print("\nself time by package of the innermost frame")
    for name, samples in by_package.most_common(args.top):
        print(f"  {cost(samples)}  {name}")
    print("\nproject functions, inclusive")
    for name, samples in inclusive.most_common(args.top):
        print(f"  {cost(samples)}  {name}")
    print("\nhottest innermost functions")
    for name, samples in leaves.most_common(args.top):
        print(f"  {cost(samples)}  {name}")


if __name__ == "__main__":
    main()
