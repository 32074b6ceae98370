"""Run the `tinker-accel` command line tool as `python -m tinker_accel`."""

from tinker_accel._cli import main

raise SystemExit(main())
