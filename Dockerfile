# One image for the server and the worker (docker-compose.yml). CPU-only PyTorch.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/tdc/app
COPY pyproject.toml README.md ./
COPY submissions ./submissions
COPY harness ./harness
COPY leaderboard ./leaderboard
COPY server ./server
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 tdc \
    && mkdir -p /srv/tdc/storage /srv/tdc/data /srv/tdc/runs /srv/tdc/weights \
    && chown -R tdc /srv/tdc
COPY configs /srv/tdc/configs
USER tdc
WORKDIR /srv/tdc
EXPOSE 8000
CMD ["tdc-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
