"""HDS suite — dicom link exchange service."""
