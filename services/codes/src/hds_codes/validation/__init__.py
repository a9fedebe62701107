"""Validation of a code and birth date: the package key on success, the lockout per
code, the slowdown per client address."""
