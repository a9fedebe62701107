from tests.e2e.support import s3_server, smtp_server, suite

__all__ = ["s3_server", "smtp_server", "suite"]
