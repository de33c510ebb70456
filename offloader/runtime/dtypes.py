"""numpy types of C element types, for reading variables and comparing arrays."""

from __future__ import annotations

import numpy as np

from ..device.signature import SCALAR_DTYPES

_MORE = {"char": np.int8, "signed char": np.int8, "unsigned char": np.uint8, "_Bool": np.uint8,
         "short": np.int16, "short int": np.int16, "unsigned short": np.uint16,
         "unsigned short int": np.uint16, "long unsigned int": np.uint64, "unsigned long long int": np.uint64}


def dtype_of(element: str):
    """numpy scalar type of a C type spelled like `double` or `const unsigned int`; None for
    anything else (a struct: compared byte for byte)."""
    words = " ".join(w for w in element.split() if w not in ("const", "volatile", "restrict"))
    return SCALAR_DTYPES.get(words) or _MORE.get(words)
