# orchestrator-mcp: `serve --http` on port 8765 (MCP at /mcp, /healthz, /metrics, webhooks).
#
#   docker build -t orchestrator-mcp .
#   docker run -d -p 8765:8765 -e ORCH_HTTP_TOKEN=<32+ random characters> \
#       -v orchestrator-data:/data orchestrator-mcp
#   docker run ... orchestrator-mcp worker          # executes runs only (shared PostgreSQL)
#
# Build arguments:
#   BASE_IMAGE  Debian bookworm image for both stages (default debian:bookworm-slim; CI uses
#               an image imported from debootstrap)
#   EXTRAS      optional extras to install, e.g. "bedrock,ansible,otel" (embeddings is big:
#               torch; add it only when you need local embeddings)
# pyarrow's Flight and S3 libraries (38 MB) are left out: LanceDB keeps its
# collections on local disk through its own storage layer and never loads them. Shared
# libraries are stripped (40 MB), except the ones auditwheel bundled in *.libs/ (stripping
# breaks numpy's OpenBLAS).
# Networks that intercept TLS: put the proxy's CA certificates (*.crt) in
# deploy/ca-certificates/. Only the build stage trusts them (pip, npm); the final image
# does not contain them.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
        python3 python3-venv nodejs npm ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/ca-certificates/ /usr/local/share/ca-certificates/build-extra/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

# The MCP reference servers (package-lock.json pins them).
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# Dependencies first (a layer that survives source changes), then the package.
RUN python3 -m venv /opt/venv
COPY pyproject.toml /src/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -q -r /tmp/requirements.txt
COPY README.md /src/
COPY orchestrator_mcp /src/orchestrator_mcp
ARG EXTRAS=""
RUN /opt/venv/bin/pip install -q --no-deps /src \
 && if [ -n "$EXTRAS" ]; then /opt/venv/bin/pip install -q "/src[$EXTRAS]"; fi \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 && cd /opt/venv/lib/python3.11/site-packages \
 && find . -depth -type d -name tests -exec rm -rf {} + \
 && find . \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' -o -name '*.hpp' \
        -o -name '*.c' -o -name '*.cpp' \) -type f -delete \
 && rm -rf pyarrow/include pyarrow/src \
 && rm -f pyarrow/*flight* pyarrow/*s3* \
 && find . -name '*.so*' -type f -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# No manuals, docs (but the copyright files) or translations; no apt caches.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/locale/*' \
        > /etc/dpkg/dpkg.cfg.d/orchestrator-slim \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 nodejs ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
        /var/log/apt /var/log/dpkg.log \
 && useradd --uid 1000 --user-group --create-home --home-dir /home/orchestrator orchestrator \
 && install -d -o 1000 -g 1000 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/node_modules /app/node_modules
COPY servers.yaml profiles.yaml package.json /app/
COPY playbooks /app/playbooks
COPY runbooks /app/runbooks
COPY workflows /app/workflows
COPY examples /app/examples

# ORCH_HTTP_TOKEN must be set (serve --http refuses to start on 0.0.0.0 without a token);
# ORCH_ALERT_TOKEN is Alertmanager's; ORCH_DATABASE_URL (postgresql://...) for replicas;
# the LLM's variables as in the README (OPENAI_API_KEY, OPENAI_MODEL, ...).
ENV PATH=/opt/venv/bin:$PATH \
    ORCH_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    FASTMCP_CHECK_FOR_UPDATES=off
WORKDIR /app
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8765
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=4)"]
ENTRYPOINT ["tini", "--", "orchestrator-mcp"]
CMD ["serve", "--http", "--host", "0.0.0.0", "--port", "8765"]
