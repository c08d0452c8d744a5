"""Errors a user can cause, and the one rule for how commands report them.

Every command catches `UserError` (and FileNotFoundError) at its entry point
and prints it as one `error:` line with exit status 1, never a traceback.
Bottom of the import graph: imports nothing of the package.
"""


class UserError(ValueError):
  """Bad input, settings or files, with a message saying what to do."""
