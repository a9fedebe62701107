from hds_common.db import run_async_migrations
from hds_storage.models import Base

run_async_migrations(Base.metadata)
