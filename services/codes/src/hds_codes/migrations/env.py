from hds_codes.models import Base
from hds_common.db import run_async_migrations

run_async_migrations(Base.metadata)
