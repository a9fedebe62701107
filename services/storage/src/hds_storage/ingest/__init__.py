"""Ingest: institutions upload DICOM instances and PDF reports into their open packages,
checked by content, encrypted as they stream."""
