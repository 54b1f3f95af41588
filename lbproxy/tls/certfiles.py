"""Reading certificate, key and CA files, with errors that name the file.

`cryptography` checks what OpenSSL would only report vaguely ("key values mismatch",
"PEM lib"): that a certificate file holds certificates, that the key parses and belongs
to the first certificate. It also reads the names a certificate answers for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

from lbproxy.tls.errors import TlsError

# (inode, mtime in ns, size); None when the file cannot be stat'ed. A replaced file
# (certbot's symlink swap, an atomic rename) changes the inode even with the same mtime.
FileStamp = tuple[int, int, int] | None


@dataclass(frozen=True, slots=True)
class CertificatePair:
    """A certificate chain file and its key file, checked to belong together."""

    cert: str
    key: str
    names: tuple[str, ...]  # DNS names from subjectAltName (the CN only without a SAN)


def stamp(path: str) -> FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TlsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TlsError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise TlsError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_certificates(path: str) -> list[x509.Certificate]:
    data = read_file(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"{path}: not a PEM certificate") from None
    if not certs:
        raise TlsError(f"{path}: not a PEM certificate")
    return certs


def read_private_key(path: str) -> PrivateKeyTypes:
    data = read_file(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"{path}: the private key is encrypted (no passphrase support)") from None
    except Exception:  # ValueError, UnsupportedAlgorithm: either way not usable
        raise TlsError(f"{path}: not a PEM private key") from None


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names of the certificate: its subjectAltName, or its CN when it has none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        values = [a.value for a in cns]
        return tuple(v.lower() for v in values if isinstance(v, str) and v)
    return tuple(name.lower() for name in san.value.get_values_for_type(x509.DNSName))


def read_pair(cert_path: str, key_path: str) -> CertificatePair:
    """Check a certificate/key pair; raises TlsError naming the file at fault."""
    leaf = read_certificates(cert_path)[0]
    key = read_private_key(key_path)
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise TlsError(f"{key_path}: does not match {cert_path}")
    try:
        names = certificate_names(leaf)
    except ValueError as exc:
        raise TlsError(f"{cert_path}: unreadable certificate extensions: {exc}") from None
    return CertificatePair(cert=cert_path, key=key_path, names=names)


def read_ca_bundle(path: str) -> str:
    """The CA file's certificates as PEM text, for ``load_verify_locations(cadata=)``."""
    certs = read_certificates(path)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)
