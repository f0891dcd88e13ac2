# loadgen image: slim Python, non-root user, `loadgen` as the entrypoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOADGEN_LOGGING_FILE=""

WORKDIR /app
COPY pyproject.toml README.md ./
COPY loadgen ./loadgen
COPY config/settings.toml ./config/settings.toml
RUN pip install '.[metrics,report]' \
    && useradd --create-home --uid 10001 loadgen \
    && mkdir /ledger \
    && chown -R loadgen:loadgen /app /ledger

USER loadgen
ENTRYPOINT ["loadgen"]
CMD ["--help"]
