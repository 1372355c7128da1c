"""The differences between the pandas versions this project supports (2.2 and later).

Stored data must be the same whichever pandas the scoring process runs: the few
places where pandas 2 and 3 differ ask here instead of assuming either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PANDAS_3 = int(pd.__version__.split(".", 1)[0]) >= 3

#: The dtype pandas gives text: "str" (a StringDtype with NaN for missing values) from
#: pandas 3, object before. The name "str" is no help on pandas 2: there it means
#: numpy's fixed-width unicode, which would turn None into "None".
STR_DTYPE: Any = pd.StringDtype(na_value=np.nan) if PANDAS_3 else np.dtype(object)


def str_array(values: Any) -> Any:
    """`values` (str or None) as a column of the dtype pandas gives text."""
    return pd.array(values, dtype=STR_DTYPE) if PANDAS_3 else np.array(values, dtype=object)


def string_dtype(storage: str, na_value: Any) -> pd.StringDtype:
    """`pd.StringDtype(storage, na_value=…)`; pandas 2.2 has only the pd.NA flavour."""
    try:
        return pd.StringDtype(storage, na_value=na_value)
    except TypeError:  # pandas < 2.3: no na_value argument
        return pd.StringDtype(storage)


def pandas_dtype(text: str) -> Any:
    """The dtype a recorded dtype name stands for; "str" is the text dtype on pandas 2 too."""
    return STR_DTYPE if text == "str" else pd.api.types.pandas_dtype(text)
