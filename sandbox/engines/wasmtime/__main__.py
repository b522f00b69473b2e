"""`python -m sandbox.engines.wasmtime`: build this engine's guest artifacts (see builder.py)."""

from sandbox.engines.wasmtime.builder import main

raise SystemExit(main())
