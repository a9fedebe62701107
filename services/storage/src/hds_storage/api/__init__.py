"""HTTP routes of the storage service: public (account token) and internal (service token)."""
