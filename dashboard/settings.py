"""Where the running app finds its database and users file (set by `showroom dashboard`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DB = "SHOWROOM_DASHBOARD_DB"
ENV_USERS = "SHOWROOM_DASHBOARD_USERS"


class SettingsError(RuntimeError):
    """The app was started without the settings it needs."""


@dataclass(frozen=True)
class Settings:
    db: str
    """The aggregator's database: an SQLite file path or a database URL (see `open_storage`)."""
    users: Path

    @classmethod
    def from_env(cls) -> Settings:
        missing = [name for name in (ENV_DB, ENV_USERS) if not os.environ.get(name)]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} not set: "
                "start the app with `showroom dashboard --db PATH --users FILE`"
            )
        return cls(db=os.environ[ENV_DB], users=Path(os.environ[ENV_USERS]))
