"""Routes for the suite's own services: validation for DLX, and the packages' code
validity for storage."""
