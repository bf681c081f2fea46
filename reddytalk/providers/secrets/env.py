"""Embedded secrets: named secrets from environment variables (or a loaded ``.env``).

The naming rule, so that one secret name works on both profiles: secret ``name``
is the variable ``REDDYTALK_SECRET_`` + ``name`` upper-cased with ``-`` turned
into ``_``. ``ehr-client-secret`` is ``REDDYTALK_SECRET_EHR_CLIENT_SECRET``.

Names follow Key Vault's rule for secret names (1-127 letters, digits and dashes;
case-insensitive), so that the mapping is one to one: no two names share a
variable, and a name valid here is valid in Key Vault.

The adapter reads the mapping it is given, never ``os.environ`` itself: the
composition root hands over the environment, as it does every other setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reddytalk.settings import SECRET_PREFIX

__all__ = ["ENV_PREFIX", "EnvironmentSecrets", "check_secret_name", "variable_for"]

ENV_PREFIX = SECRET_PREFIX

# Key Vault: "Secret names can only contain alphanumeric characters and dashes", 1-127 long.
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


def check_secret_name(name: str) -> str:
    """``name`` if Key Vault accepts it as a secret name.

    Raises:
        ValueError: It is empty, longer than 127 or holds other than letters, digits, dashes.
    """
    if not _SECRET_NAME.fullmatch(name):
        raise ValueError(f"not a secret name (1-127 letters, digits and dashes): {name!r}")
    return name


def variable_for(name: str) -> str:
    """The environment variable that holds secret ``name`` on the embedded profile."""
    return ENV_PREFIX + check_secret_name(name).upper().replace("-", "_")


class EnvironmentSecrets:
    """:class:`reddytalk.ports.Secrets` over environment variables.

    An empty variable counts as unset: ``.env`` templates list secrets as ``NAME=``
    placeholders, and no secret is ever validly empty.

    Args:
        environ: The environment to read (``os.environ`` from the composition root,
            or a snapshot of it); read on every :meth:`get`.
    """

    __slots__ = ("_environ",)

    def __init__(self, *, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __repr__(self) -> str:
        return "EnvironmentSecrets()"

    async def get(self, name: str) -> str | None:
        """The value of ``REDDYTALK_SECRET_<NAME>``, or None if it is unset or empty.

        Raises:
            ValueError: ``name`` is not a valid secret name.
        """
        return self._environ.get(variable_for(name)) or None

    async def close(self) -> None:
        """Nothing to release; here so both adapters close alike."""
