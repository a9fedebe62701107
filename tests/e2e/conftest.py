from e2e_suite import s3_server, smtp_server, suite

__all__ = ["s3_server", "smtp_server", "suite"]
