# Huiyin: a slim image that runs `huiyin run` as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HUIYIN_DATABASE_URL=sqlite+aiosqlite:////data/huiyin.db

# A CJK font, so /stats charts label units in Chinese.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY schedules ./schedules
COPY domain ./domain
RUN pip install . && useradd --system --uid 10001 --home /data huiyin \
    && mkdir -p /data && chown huiyin /data

USER huiyin
VOLUME ["/data"]
CMD ["huiyin", "run"]
