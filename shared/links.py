"""Public links the fleet hands out."""

from __future__ import annotations


def verification_url(public_base_url: str, token: str) -> str:
    """Where anyone can check a certificate (served by the certifier)."""
    return f"{public_base_url.rstrip('/')}/certs/verify/{token}"
