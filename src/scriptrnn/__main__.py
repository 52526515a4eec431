"""``python -m scriptrnn`` is the same as the ``scriptrnn`` command."""

from .cli import main

raise SystemExit(main())
