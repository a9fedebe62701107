"""Key sessions: the keys live sessions unlocked, held here wrapped under each session's
secret (see :mod:`hds_common.crypto._grants` for the construction)."""
