from hds_auth.models import Base
from hds_common.db import run_async_migrations

run_async_migrations(Base.metadata)
