"""Certificates made at test time with the openssl command line (a CA, and leaves it signs).

Keys are EC P-256 in PKCS#8 PEM (what rustls in Zenoh and the Foxglove SDK read); server
certificates name ``localhost`` and ``127.0.0.1``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import unavailable


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def openssl(*args: str) -> None:
    if shutil.which('openssl') is None:
        unavailable('the openssl command is not installed')
    result = subprocess.run(['openssl', *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f'openssl {" ".join(args)}: {result.stderr}')


def new_key_args(key: Path) -> list[str]:
    return [
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        str(key),
    ]


class Authority:
    """A certificate authority in ``folder``."""

    def __init__(self, folder: Path, name: str = 'stf-test-ca') -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ca = Pair(folder / f'{name}.pem', folder / f'{name}.key')
        openssl(
            'req', '-x509', *new_key_args(self.ca.key), '-out', str(self.ca.cert),
            '-days', '2', '-subj', f'/CN={name}',
        )  # fmt: skip

    def issue(self, common_name: str, address: str = '127.0.0.1') -> Pair:
        """A certificate for ``common_name`` that also names localhost and ``address``."""
        pair = Pair(self.folder / f'{common_name}.pem', self.folder / f'{common_name}.key')
        request = self.folder / f'{common_name}.csr'
        extensions = self.folder / f'{common_name}.ext'
        extensions.write_text(
            f'subjectAltName=DNS:localhost,IP:{address}\n'
            'basicConstraints=critical,CA:FALSE\n'
            'extendedKeyUsage=serverAuth,clientAuth\n'
        )
        openssl('req', *new_key_args(pair.key), '-out', str(request), '-subj', f'/CN={common_name}')
        openssl(
            'x509', '-req', '-in', str(request), '-CA', str(self.ca.cert), '-CAkey',
            str(self.ca.key), '-CAcreateserial', '-out', str(pair.cert), '-days', '2',
            '-extfile', str(extensions),
        )  # fmt: skip
        return pair
