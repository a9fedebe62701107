"""Shares: an account gives another a study or document it holds; an institution delivers a
whole package."""
