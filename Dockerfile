# Production image: uvicorn serving Postroom; the database URL comes from the
# environment (POSTROOM_DATABASE_URL=postgresql://user:pass@host/db).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    POSTROOM_DATA_DIR=/var/lib/postroom POSTROOM_LOG_FORMAT=json

WORKDIR /srv/postroom
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY connectors ./connectors
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/postroom postroom \
    && mkdir -p /var/lib/postroom && chown postroom /var/lib/postroom

USER postroom
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrate, then serve. Several containers can run behind one load balancer.
CMD ["sh", "-c", "postroom migrate && exec uvicorn app.asgi:app --host 0.0.0.0 --port 8000 --proxy-headers --no-access-log"]
