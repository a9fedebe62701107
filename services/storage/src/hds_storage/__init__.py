"""HDS suite — encrypted storage service."""
