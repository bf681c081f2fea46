"""PHI at rest: sealed field by field with per-clinic data keys (envelope encryption).

:class:`PhiCipher` seals, opens and blind-indexes; :class:`LocalKeyFile` is the embedded
profile's key-encryption key; :class:`DataKeyStore` is where wrapped data keys are kept.
"""

from reddytalk.phi.cipher import PhiCipher
from reddytalk.phi.data_keys import DataKeyStore, MemoryDataKeys, WrappedDataKey
from reddytalk.phi.local_kek import LocalKeyFile

__all__ = ["DataKeyStore", "LocalKeyFile", "MemoryDataKeys", "PhiCipher", "WrappedDataKey"]
