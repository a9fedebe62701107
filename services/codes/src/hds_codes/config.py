"""Settings of the access code service (environment prefix ``HDS_CODES_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from hds_common.settings import Argon2Settings, DatabaseServiceSettings


class Settings(DatabaseServiceSettings, Argon2Settings):
    model_config = SettingsConfigDict(env_prefix="HDS_CODES_", extra="ignore")

    port: int = 8002
    # Embedded default: a SQLite file under ./var; production: postgresql://…
    database_url: str = "sqlite:///var/codes.db"

    # Secret of the keyed lookup hash (HMAC-SHA256) under which codes are found, as
    # HDS_KEY_PROVIDER finds it (a file path for "file"; created on first start). Every
    # replica must share it: a new secret orphans all issued codes. Keep it off the
    # database host: with it and the table, a code off a sheet finds its slot.
    lookup_secret_file: Path = Path("var/keys/codes-lookup.key")

    # Argon2id cost of new code key slots: 3 passes over 128 MiB in 2 lanes, about 0.2 s
    # per validation on two cores and 4.7 h of one core for the 43,830 birth dates of 120
    # years (README, "Cost of the code key slot"; bench/bench_code_slot.py). Stored per
    # code: slots made under an older cost still open, and are re-made under this one at
    # their next right answer.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=131072, ge=8)
    argon2_parallelism: int = Field(default=2, ge=1)
    # Argon2id runs in worker threads; this bounds its memory (x 128 MiB) and CPU use.
    kdf_concurrency: int = Field(default=2, ge=1)

    # Validity of a code in days: the institution's setting, else the default, always
    # within [min, max].
    validity_min_days: int = Field(default=30, ge=1)
    validity_max_days: int = Field(default=90, ge=1)
    validity_default_days: int = Field(default=30, ge=1)

    # Lockout per code: after this many failed answers the code locks for
    # lock_seconds, doubled for every further lock until a correct answer.
    code_max_failures: int = Field(default=5, ge=1)
    code_lock_seconds: int = Field(default=900, ge=1)
    code_lock_max_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # Slowdown per client address, across codes: beyond this many failures in a window,
    # each further attempt from the address waits client_delay_seconds, doubled for every
    # further failure up to client_delay_max_seconds, and is then answered as usual. It
    # slows a guesser without refusing the right answers of others behind the same
    # address (a hospital's NAT); the per-code lockout is what bounds guesses on a code.
    client_max_failures: int = Field(default=20, ge=1)
    client_window_seconds: int = Field(default=900, ge=1)
    client_delay_seconds: float = Field(default=0.5, ge=0)
    client_delay_max_seconds: float = Field(default=10.0, ge=0)

    # Lifetime of the package grant handed out after a successful validation.
    grant_ttl_seconds: int = Field(default=900, ge=60)

    @model_validator(mode="after")
    def _consistent_validity(self) -> Settings:
        if not (self.validity_min_days <= self.validity_default_days <= self.validity_max_days):
            raise ValueError("need HDS_CODES_VALIDITY_MIN_DAYS <= _DEFAULT_DAYS <= _MAX_DAYS")
        # A cost Argon2id cannot run is refused at start-up, not at the first code.
        _ = self.argon2
        return self
