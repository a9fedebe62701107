"""Dependencies of the gateway's own routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from hds_common.deps import runtime_dependency
from hds_gateway.runtime import Runtime

__all__ = ["RuntimeDep", "runtime_of"]


runtime_of = runtime_dependency(Runtime)
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
