"""SASL_SSL for the Apache Kafka broker the service starts: a self-signed certificate, users
for PLAIN and SCRAM-SHA-256, and the client settings that reach it.

Production clusters speak SASL over TLS; this makes one on a laptop or in a test, so every
client of the service is proven to authenticate with the same ``--kafka-option`` settings
users give their own cluster. The broker's client listener is then SASL_SSL only: a client
without TLS or credentials is refused (and the broker logs ``Failed authentication``).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..common.java_runtime import find_java
from ..errors import BrokerError

#: The SASL mechanisms the broker accepts (clients pick one with ``sasl.mechanism``).
MECHANISMS = ("PLAIN", "SCRAM-SHA-256")
#: The broker's own user, for its inter-broker listener.
BROKER_USER = "broker"


@dataclass(frozen=True)
class SaslSsl:
    """A broker's TLS material and SASL users, kept in ``directory``.

    Parameters
    ----------
    directory
        Holds ``broker.p12`` (key and certificate, PKCS#12) and ``ca.pem`` (the certificate
        clients trust: ``ssl.ca.location``).
    users
        User name -> password, accepted with PLAIN and SCRAM-SHA-256.
    store_password
        The keystore's password.
    """

    directory: Path
    users: Mapping[str, str]
    store_password: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @classmethod
    def create(cls, directory: Path, users: Mapping[str, str], host: str = "127.0.0.1"):
        """Make a self-signed certificate for ``host`` (and localhost) with the keytool of the
        Java runtime that runs the broker.

        Raises
        ------
        BrokerError
            If keytool is missing or fails.
        """
        keytool = str(find_java().tool("keytool"))
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        users = {BROKER_USER: secrets.token_hex(12), **users}
        made = cls(directory, users)
        san = f"SAN=IP:{host},DNS:localhost" if host[0].isdigit() else f"SAN=DNS:{host}"
        for args in (
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
             "-validity", "30", "-dname", f"CN={host}", "-ext", san, "-storetype", "PKCS12",
             "-keystore", str(made.keystore), "-storepass", made.store_password],
            ["-exportcert", "-rfc", "-alias", "broker", "-keystore", str(made.keystore),
             "-storepass", made.store_password, "-file", str(made.ca_file)],
        ):  # fmt: skip
            done = subprocess.run(
                [keytool, *args], capture_output=True, text=True, timeout=60, check=False
            )
            if done.returncode != 0:
                raise BrokerError(f"keytool failed: {(done.stdout + done.stderr)[-1000:]}")
        return made

    def listener_properties(self, listener: str = "SASL_SSL") -> dict[str, str]:
        """``server.properties`` entries of a SASL_SSL listener named ``listener``."""
        name = listener.lower()
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
        broker_password = self.users[BROKER_USER]
        return {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self.store_password,
            "ssl.key.password": self.store_password,
            # The broker checks at start that a client trusting this could reach it.
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            f"listener.name.{name}.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{BROKER_USER}" password="{broker_password}" {plain_users};'
            ),
            f"listener.name.{name}.scram-sha-256.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER_USER}" password="{broker_password}";'
            ),
        }

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create every user's SCRAM credentials."""
        args = []
        for user, password in self.users.items():
            args += ["--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]"]
        return args

    def client_options(self, user: str, mechanism: str = "SCRAM-SHA-256") -> dict[str, str]:
        """librdkafka settings of a client that logs in as ``user``."""
        if mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}")
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": self.users[user],
            "ssl.ca.location": str(self.ca_file),
        }
