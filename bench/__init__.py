"""edgecam's benchmarks, run from the checkout's root as modules: `.venv/bin/python -m bench.NAME`.

Each script's docstring says what it measures and how (`--help` prints its options); the figures
and the commands that made them are in docs/PERFORMANCE.md and docs/RELIABILITY.md. What they
share lives here, once: `launcher` starts and stops the daemon (tests/harness.py uses it too),
`cpu` reads a process's CPU time, `daemon` is the daemon on the photos read through its stats
messages (pipeline, zones, web), `machine` is the header every script prints. A script runs the
checkout's edgecam (the root is on sys.path under `-m`) and imports the tests' helpers for real
components (`tests.streams`, `tests.brokers`, `tests.learn_views`) by their package path.
"""
