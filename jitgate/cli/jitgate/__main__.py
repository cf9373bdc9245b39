"""`python -m jitgate.cli.jitgate …` runs the `jitgate` program (tests and the demo do)."""

from jitgate.cli.jitgate.main import main

raise SystemExit(main())
