"""Compile the mounted standard library's bytecode, inside the component guest.

Run by sandbox/engines/wasmtime/builder.py as a job's code at build time (read as
text, never imported on the host): the host's magic number differs from the guest's,
so the .pyc files must come from the guest. Prints "<compiled> <failed>".
"""

import importlib.util
import os
from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]

count = failed = 0
for root, dirs, files in os.walk("/python"):
    dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(("test", "idlelib"))]
    for name in files:
        if not name.endswith(".py"):
            continue
        path = os.path.join(root, name)
        with open(path, "rb") as handle:
            source = handle.read()
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except SyntaxError:
            failed += 1
            continue
        data = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
        target = importlib.util.cache_from_source(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # py_compile fails on large files under WASI; writing the bytes works.
        with open(target, "wb") as handle:
            handle.write(data)
        count += 1
print(count, failed)
