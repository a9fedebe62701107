"""HDS suite — identity service."""
