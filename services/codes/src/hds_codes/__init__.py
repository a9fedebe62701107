"""HDS suite — access code service."""
