"""Packages: institutions open and complete them; the other services read their status,
export their key and import them into accounts."""
