"""Putting a conversation's state back: what a withdrawn early answer needs.

The session answers a turn on the recognizer's hypothesis before its final transcript
(:mod:`reddytalk.calls.session`); when the final says something else and nobody heard
the answer, the policy's state goes back to what it was before that answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection

__all__ = ["snapshot"]

_CONTAINERS = (list, dict, set)


def snapshot(obj: object, *, shared: Collection[str] = ()) -> Callable[[], None]:
    """Remember ``obj``'s attributes now; the result puts them back.

    Lists, dicts and sets are copied one level deep (the values in them are frozen
    domain values); attributes named in ``shared`` (collaborators: the clinic, the EHR,
    the clock) are left alone.
    """
    saved = {
        name: copy.copy(value) if isinstance(value, _CONTAINERS) else value
        for name, value in vars(obj).items()
        if name not in shared
    }

    def restore() -> None:
        for name, value in saved.items():
            setattr(obj, name, copy.copy(value) if isinstance(value, _CONTAINERS) else value)

    return restore
