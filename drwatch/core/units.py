"""Units every layer shares, defined once."""

from typing import Final

DAY_SECONDS: Final = 86400
GIB: Final = 1024**3
