# Tidings: the API (tidings serve) or a dispatcher (tidings worker) from one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TIDINGS_VAR_DIR=/var/lib/tidings

WORKDIR /app
RUN useradd --system --create-home --home-dir /home/tidings --uid 10001 tidings \
    && mkdir -p /var/lib/tidings && chown tidings:tidings /var/lib/tidings

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY email_templates ./email_templates
RUN pip install .

USER tidings
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["sh", "-c", "tidings migrate && exec tidings serve --host 0.0.0.0 --port 8000"]
