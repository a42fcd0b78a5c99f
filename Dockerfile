# Huiyin: a slim image that runs `huiyin run` as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HUIYIN_DATABASE_URL=sqlite+aiosqlite:////data/huiyin.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY schedules ./schedules
RUN pip install . && useradd --system --uid 10001 --home /data huiyin \
    && mkdir -p /data && chown huiyin /data

USER huiyin
VOLUME ["/data"]
CMD ["huiyin", "run"]
