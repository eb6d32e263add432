"""The one error type of this package: bad input the user can fix, reported without a traceback
(a tinybert-core `TinybertError`)."""

from tinybert_core import TinybertError


class DeployError(TinybertError):
    """A model, vocabulary or input file that cannot be used; the message says which and why."""
