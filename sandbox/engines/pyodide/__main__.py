"""`python -m sandbox.engines.pyodide`: build this engine's guest artifacts (see builder.py)."""

from sandbox.engines.pyodide.builder import main

raise SystemExit(main())
