"""HDS suite — gateway."""
