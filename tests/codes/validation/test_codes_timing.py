"""An unknown code must cost as much time as a wrong birth date (PostgreSQL).

Real Argon2id parameters (8 MiB, one pass: ~10 ms, well above database noise), then the
production cost itself (the defaults of the settings), and interleaved samples, so load
on the machine hits both kinds alike; medians compared.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hds_codes.config import Settings
from hds_codes.values import format_code, generate_code
from tests.codes.support import Neighbourhood, assert_problem, codes_harness

pytestmark = pytest.mark.postgres

SAMPLES = 60
PRODUCTION_SAMPLES = 12
WARM_UP = 10


async def test_unknown_code_and_wrong_birth_date_take_the_same_time(
    postgres_url: str, tmp_path: Path, hood: Neighbourhood
) -> None:
    unknown, wrong = await _median_times(
        postgres_url, tmp_path, hood, samples=SAMPLES, argon2_memory_kib=8192, argon2_time_cost=1
    )
    assert abs(unknown - wrong) <= 0.2 * min(unknown, wrong), (
        f"median unknown {unknown * 1000:.2f} ms, wrong birth date {wrong * 1000:.2f} ms"
    )


async def test_production_cost_is_paid_by_unknown_codes_and_wrong_birth_dates_alike(
    postgres_url: str, tmp_path: Path, hood: Neighbourhood
) -> None:
    production = Settings()
    # Process CPU time (service and test client share the process): the work each kind
    # does, which load from other processes on the machine does not blur as it blurs
    # wall time at ~0.4 CPU-s per run.
    unknown, wrong = await _median_times(
        postgres_url,
        tmp_path,
        hood,
        samples=PRODUCTION_SAMPLES,
        clock=time.process_time,
        argon2_time_cost=production.argon2_time_cost,
        argon2_memory_kib=production.argon2_memory_kib,
        argon2_parallelism=production.argon2_parallelism,
        kdf_concurrency=production.kdf_concurrency,
    )
    assert abs(unknown - wrong) <= 0.2 * min(unknown, wrong), (
        f"median unknown {unknown * 1000:.2f} ms, wrong birth date {wrong * 1000:.2f} ms"
    )
    # Both really pay the production cost: 3 passes over 128 MiB take far more CPU than
    # the database statements (about 0.4 CPU-s; 0.2 s of wall time on two idle cores).
    assert min(unknown, wrong) >= 0.1


async def _median_times(
    postgres_url: str,
    tmp_path: Path,
    hood: Neighbourhood,
    *,
    samples: int,
    clock: Callable[[], float] = time.perf_counter,
    **argon2: int,
) -> tuple[float, float]:
    """Median seconds (of ``clock``) of a validation with an unknown code and with a wrong
    birth date."""
    settings: dict[str, Any] = {
        # Lockout off for this test: every attempt must run the whole path.
        "code_max_failures": 1_000_000,
        "client_max_failures": 1_000_000,
        **argon2,
    }
    async with codes_harness(postgres_url, tmp_path / "lookup.key", hood, **settings) as codes:
        issued = await codes.issue(birth_date="19500101")
        day = dt.date(1960, 1, 1)
        unknown_times: list[float] = []
        wrong_times: list[float] = []
        warm_up = min(WARM_UP, samples // 4)
        for i in range(warm_up + samples):
            wrong_date = f"{day + dt.timedelta(days=i):%Y%m%d}"
            unknown_code = format_code(generate_code())
            # Alternate which kind goes first, so neither gets a systematically warmer cache.
            order = [("unknown", unknown_code), ("wrong", issued.code)]
            if i % 2:
                order.reverse()
            for kind, code in order:
                started = clock()
                response = await codes.validate(code, wrong_date, client="10.99.0.1")
                elapsed = clock() - started
                assert_problem(response, 401, "invalid-code")
                if i >= warm_up:
                    (unknown_times if kind == "unknown" else wrong_times).append(elapsed)
        assert codes.metric("rejected") == 2 * (warm_up + samples)
    return statistics.median(unknown_times), statistics.median(wrong_times)
