"""Cost of the code key slot: validation latency and throughput per Argon2id parameter set,
and what each set makes an offline search for a birth date cost.

    python bench/bench_code_slot.py [--calls 12] [--concurrency 2] [--sets 2:19456:1,...]

For each parameter set (time cost : memory KiB : lanes) the Argon2id run a validation pays
is made through the service's own ``KeyDeriver`` (worker threads, at most ``--concurrency``
at once, as ``HDS_CODES_KDF_CONCURRENCY``):

- latency: ``--calls`` runs one after the other; median wall time, and the median CPU time
  of one run (process CPU seconds over the run: with several lanes it exceeds the wall time);
- throughput: ``--calls`` runs started at once; validations per second the machine sustains;
- offline search: an attacker holding the lookup key, the codes table and a code read off a
  carrier sheet tries every birth date of ~120 years (``CANDIDATES`` = 43,830 dates), each
  one Argon2id run: CPU seconds per run times candidates = the search time on one core. Lanes
  do not reduce it: they spread the same work over cores.

The bench reports and exits 0; it asserts nothing. Other processes on the machine raise the
wall times; the CPU times per run hardly depend on them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/codes/src"))

from hds_codes.slots import KeyDeriver, slot_secret
from hds_common.crypto import Argon2Params, generate_salt

# Birth dates in 120 years (leap days included).
CANDIDATES = round(120 * 365.25)
DEFAULT_SETS = "2:19456:1,2:65536:1,3:65536:1,2:131072:1,3:131072:1,2:131072:2,3:262144:2"


def parse_sets(text: str) -> list[Argon2Params]:
    sets = []
    for item in text.split(","):
        time_cost, memory, lanes = (int(part) for part in item.split(":"))
        sets.append(Argon2Params(time_cost, memory, lanes))
    return sets


async def latency(deriver: KeyDeriver, params: Argon2Params, calls: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one Argon2id run, runs one after the other."""
    secret = slot_secret("ABCDEFGHJKLM", dt.date(1970, 1, 1))
    walls, cpus = [], []
    for _ in range(calls):
        cpu, wall = time.process_time(), time.perf_counter()
        await deriver.kek(secret, generate_salt(), params)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


async def throughput(deriver: KeyDeriver, params: Argon2Params, calls: int) -> float:
    secret = slot_secret("ABCDEFGHJKLM", dt.date(1970, 1, 1))
    start = time.perf_counter()
    await asyncio.gather(*(deriver.kek(secret, generate_salt(), params) for _ in range(calls)))
    return calls / (time.perf_counter() - start)


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--sets", default=DEFAULT_SETS)
    args = parser.parse_args()
    deriver = KeyDeriver(args.concurrency)
    print(
        f"{os.cpu_count()} cores, KDF concurrency {args.concurrency}, {args.calls} calls per "
        f"figure, {CANDIDATES} candidate birth dates"
    )
    print(
        f"{'t:MiB:lanes':>12} {'latency':>9} {'CPU/run':>9} {'validations/s':>14} "
        f"{'memory in use':>14} {'offline, 1 core':>16}"
    )
    for params in parse_sets(args.sets):
        await deriver.kek(b"warm-up", generate_salt(), params)
        wall, cpu = await latency(deriver, params, args.calls)
        rate = await throughput(deriver, params, args.calls)
        memory_mib = params.memory_cost_kib / 1024
        label = f"{params.time_cost}:{memory_mib:.0f}:{params.parallelism}"
        print(
            f"{label:>12} {wall * 1000:>7.0f}ms {cpu * 1000:>7.0f}ms {rate:>14.1f} "
            f"{memory_mib * args.concurrency:>11.0f}MiB {duration(cpu * CANDIDATES):>16}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
