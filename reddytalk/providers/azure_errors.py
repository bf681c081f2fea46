"""azure-core errors → the domain's :class:`ProviderError`, one rule for every Azure SDK.

408, 429 and 5xx answers and transport failures (``ServiceRequestError``: nothing sent
or the connection refused; ``ServiceResponseError``: no usable answer) may succeed when
retried. Other statuses will not until someone fixes the setup or the request: 400
(for Key Vault also an unwrap its key cannot decrypt), 401/403 (identity, access
policy), 404 (a wrong key version or resource), and a credential that failed without a
status. The message keeps the service, the action, the status and a token-like error
code: never the SDK's own text, which may quote the request or the service's answer
(PHI, secrets). Cosmos DB has rules of its own (``store.cosmos_account``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from reddytalk.errors import ProviderError

__all__ = [
    "SPEECH_RETRYABLE_CODES",
    "is_retryable_status",
    "provider_error",
    "provider_errors",
    "speech_canceled_error",
]

#: The Speech SDK's ``CancellationErrorCode`` names after which a new attempt may succeed
#: (recognition and synthesis alike); AuthenticationFailure, Forbidden and BadRequest
#: need someone to fix the setup.
SPEECH_RETRYABLE_CODES = frozenset(
    {
        "ConnectionFailure",
        "ServiceTimeout",
        "ServiceUnavailable",
        "ServiceError",
        "TooManyRequests",
        "ServiceRedirectTemporary",
        "RuntimeError",
    }
)


def speech_canceled_error(what: str, error_code: str) -> ProviderError:
    """The :class:`ProviderError` for a Speech SDK ``canceled`` event: ``what`` (e.g.
    ``Azure Speech recognition``) and the ``CancellationErrorCode`` name only; the SDK's
    ``error_details`` text is left out, as it may quote the service's answer."""
    return ProviderError(
        f"{what} canceled: {error_code}", retryable=error_code in SPEECH_RETRYABLE_CODES
    )


_RETRYABLE_STATUSES = frozenset({408, 429})
_SAFE_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_retryable_status(status: int | None) -> bool:
    """Whether an HTTP status may succeed when the request is sent again."""
    return status is not None and (status in _RETRYABLE_STATUSES or status >= 500)


def provider_error(service: str, action: str, error: AzureError) -> ProviderError:
    """The PHI-free :class:`ProviderError` for ``error`` of ``service``'s ``action``."""
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        status = error.status_code
        code = error.error.code if error.error is not None else None
        detail = f"HTTP {status}"
        if code and _SAFE_ERROR_CODE.fullmatch(code):
            detail += f" ({code})"
        return ProviderError(
            f"{service} {action} failed: {detail}", retryable=is_retryable_status(status)
        )
    retryable = isinstance(error, ServiceRequestError | ServiceResponseError)
    return ProviderError(f"{service} {action} failed: {type(error).__name__}", retryable=retryable)


@contextmanager
def provider_errors(service: str, action: str) -> Iterator[None]:
    """Raise :func:`provider_error` for any azure-core error in the block (``from None``:
    the SDK's exception, and its text, stay out of the traceback)."""
    try:
        yield
    except AzureError as error:
        raise provider_error(service, action, error) from None
