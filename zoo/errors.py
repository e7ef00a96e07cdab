"""The one exception type that means "the user asked for something we cannot do"."""


class UsageError(Exception):
    """Bad input (unknown model, bad prompt, missing data, bad checkpoint ...).

    The CLIs catch it, print its message as ONE line on stderr and exit with status 2. Raise it with a
    message that tells the user what to do (e.g. the command that installs a missing corpus).
    """
