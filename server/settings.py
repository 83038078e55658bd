"""Server settings: one pydantic-settings class extending the harness's (``TDC_`` prefix).

    settings = Settings()                                   # TDC_DATABASE_URL, TDC_STORAGE_DIR, ...
    settings = Settings(database_url="sqlite://", storage_dir=tmp, quota_per_day=100)
    app = create_app(settings)

Everything the server reads from the environment is here; nothing is read at import time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field

from harness.settings import HarnessSettings


class Settings(HarnessSettings):
    """The leaderboard server's configuration (all fields settable as ``TDC_<NAME>``)."""

    database_url: str = "sqlite:///./tdc.db"
    storage_dir: Path = Path("storage")
    # The largest subset file accepted; a 1e8-UID int64 subset is 800 MB.
    max_upload_bytes: int = Field(1 << 30, gt=0)
    # Non-file multipart fields (dataset, task, ...) are tiny; anything bigger is an attack.
    max_field_bytes: int = Field(4096, gt=0)
    # Request headers (names and values) and the query string: what a browser or a client
    # sends fits in a few KiB; uvicorn itself would take megabytes.
    max_header_bytes: int = Field(16 * 1024, gt=0)
    max_query_bytes: int = Field(4096, gt=0)
    quota_per_day: int = Field(5, ge=0, description="uploads per team, dataset and 24 h")
    max_attempts: int = Field(3, gt=0, description="infra attempts before failed_infra")
    retry_backoff_s: float = Field(60.0, ge=0, description="first infra retry delay; doubles")
    lease_seconds_max: int = Field(86400, gt=0)
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    # port (TDC_PORT) is the harness's: the demo starts a server on it too.
    # A token's last_used_at is refreshed at most this often (a write per request would
    # serialise every read behind SQLite's single writer).
    token_touch_s: int = Field(60, ge=0)
    # "<dataset>/<task>" -> when its hidden test scores become public (overrides the spec).
    reveal_at: dict[str, datetime] = Field(default_factory=dict)
    # Boards are served from memory, built once per board version (server.routes.cached).
    board_cache_mb: int = Field(32, gt=0, description="bodies and ranked boards kept, in MiB")
    board_max_age_s: int = Field(5, ge=0, description="browsers and proxies may reuse a board")
    board_stale_s: int = Field(60, ge=0, description="... and show it while they revalidate")
    board_rank_process: bool = Field(True, description="rank boards in a child process")
    db_pool_size: int = Field(10, gt=0)
    db_max_overflow: int = Field(30, ge=0)

    def public_url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")
