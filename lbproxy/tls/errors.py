"""The one error the TLS building blocks raise."""

from __future__ import annotations


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be served.

    The message starts with the file it is about, then the problem:
    ``certs/site.key: does not match certs/site.pem``.
    """
