"""A throwaway certificate authority for the login tests.

Every TLS hop of the chain (browser to HAProxy, browser and hub to the identity
provider) is verified against this CA, never skipped: a test that ignored certificate
errors could not tell a correct hub URL from a wrong one. The CA lives in a temporary
directory and is made anew for every test run.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Short lifetimes: the certificates only have to outlive one test run.
_CA_LIFETIME = datetime.timedelta(days=2)
_LEAF_LIFETIME = datetime.timedelta(days=1)
# Clocks of the processes may differ slightly from the one that signs.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCert:
    """Files of one server certificate: PEM certificate, PEM key and both in one file."""

    cert_path: Path
    key_path: Path
    # HAProxy's `crt` takes certificate and key in one file.
    bundle_path: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateAuthority:
    """A self-signed CA that issues server certificates for given names."""

    def __init__(self, directory: Path, common_name: str = "jupyterhub-platform login test CA"):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        public_key = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        dns_names: list[str] | tuple[str, ...] = (),
        ip_addresses: list[str] | tuple[str, ...] = (),
    ) -> IssuedCert:
        """Issue a server certificate whose SANs are the given DNS names and IP addresses."""
        if not dns_names and not ip_addresses:
            raise ValueError("a server certificate needs at least one subject alternative name")
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        common_name = dns_names[0] if dns_names else ip_addresses[0]
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LEAF_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _pem_key(key)
        cert_path = self.directory / f"{name}.crt.pem"
        key_path = self.directory / f"{name}.key.pem"
        bundle_path = self.directory / f"{name}.bundle.pem"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        bundle_path.write_bytes(cert_pem + key_pem)
        bundle_path.chmod(0o600)
        return IssuedCert(cert_path=cert_path, key_path=key_path, bundle_path=bundle_path)
