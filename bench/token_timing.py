"""How long the status page's token check takes for wrong tokens, against the right one.

Run from the repository root:

    .venv/bin/python -m bench.token_timing [--rounds R] [--calls N]

A timing side channel would show as wrong tokens that share a longer prefix
with the right one (or have its length) taking longer to refuse. The check
(edgecam.web.auth.Auth.accepts_token) compares SHA-256 digests with
hmac.compare_digest, so every guess should take the same time. This measures
the check itself, in process, where nanoseconds show: over HTTP the same
difference would be lost in the request's milliseconds, which only helps.

Shared, noisy machines: each round times every guess once, in an order
rotated from round to round, N calls each; the ratio to the right token's
time is taken within each round and its median over the rounds reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench.machine import print_header
from edgecam.web.auth import Auth

TOKEN = "correct-horse-battery-staple-0123456789"


def guesses() -> dict[str, str]:
    """Wrong tokens that share more and more with the right one, and the right one."""
    return {
        "right": TOKEN,
        "wrong first character": "X" + TOKEN[1:],
        "wrong last character": TOKEN[:-1] + "X",
        "right prefix, one short": TOKEN[:-1],
        "right, one longer": TOKEN + "X",
        "empty": "",
        "nothing in common, same length": "x" * len(TOKEN),
        "1 kB": "x" * 1024,
    }


def per_call_ns(check: Callable[[str], bool], given: str, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        check(given)
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.token_timing", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    print_header("edgecam token check timing", __file__)
    check = Auth(TOKEN).accepts_token
    named = guesses()
    names = list(named)
    ratios: dict[str, list[float]] = {name: [] for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        measured = {name: per_call_ns(check, named[name], args.calls) for name in order}
        for name in names:
            times[name].append(measured[name])
            ratios[name].append(measured[name] / measured["right"])
    print(f"\n{args.rounds} rounds of {args.calls} calls per guess\n")
    print("| guess | ns per check (median) | / right (median) | / right (range) |")
    print("|---|---:|---:|---:|")
    for name in names:
        print(f"| {name} | {statistics.median(times[name]):.0f} | {statistics.median(ratios[name]):.3f} "
              f"| {min(ratios[name]):.3f}-{max(ratios[name]):.3f} |")


if __name__ == "__main__":
    main()
