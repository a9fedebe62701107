"""An unknown code must cost as much time as a wrong birth date (PostgreSQL).

Real Argon2id parameters (8 MiB, one pass: ~10 ms, well above database noise) and
interleaved samples, so load on the machine hits both kinds alike; medians compared.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import pytest
from codes_harness import Neighbourhood, assert_problem, codes_harness

from hds_codes.values import format_code, generate_code

pytestmark = pytest.mark.postgres

SAMPLES = 60
WARM_UP = 10


async def test_unknown_code_and_wrong_birth_date_take_the_same_time(
    postgres_url: str, tmp_path: Path, hood: Neighbourhood
) -> None:
    async with codes_harness(
        postgres_url,
        tmp_path / "lookup.key",
        hood,
        argon2_memory_kib=8192,
        argon2_time_cost=1,
        # Lockout off for this test: every attempt must run the whole path.
        code_max_failures=1_000_000,
        client_max_failures=1_000_000,
    ) as codes:
        issued = await codes.issue(birth_date="19500101")
        day = dt.date(1960, 1, 1)
        unknown_times: list[float] = []
        wrong_times: list[float] = []
        for i in range(WARM_UP + SAMPLES):
            wrong_date = f"{day + dt.timedelta(days=i):%Y%m%d}"
            unknown_code = format_code(generate_code())
            # Alternate which kind goes first, so neither gets a systematically warmer cache.
            order = [("unknown", unknown_code), ("wrong", issued.code)]
            if i % 2:
                order.reverse()
            for kind, code in order:
                started = time.perf_counter()
                response = await codes.validate(code, wrong_date, client="10.99.0.1")
                elapsed = time.perf_counter() - started
                assert_problem(response, 401, "invalid-code")
                if i >= WARM_UP:
                    (unknown_times if kind == "unknown" else wrong_times).append(elapsed)
        assert codes.metric("rejected") == 2 * (WARM_UP + SAMPLES)

    unknown = statistics.median(unknown_times)
    wrong = statistics.median(wrong_times)
    assert abs(unknown - wrong) <= 0.2 * min(unknown, wrong), (
        f"median unknown {unknown * 1000:.2f} ms, wrong birth date {wrong * 1000:.2f} ms"
    )
