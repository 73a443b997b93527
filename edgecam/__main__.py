"""Allows `python -m edgecam`, the same as the `edgecam` console script."""

from edgecam.cli import main

raise SystemExit(main())
