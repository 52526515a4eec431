"""The one exception type users see.

Anything the user can fix (a missing file, a bad flag value, a corrupt checkpoint)
is raised as ScriptRNNError with a message that says what is wrong and, where it
helps, what to do. The CLI prints it as a single line and exits with status 2;
everything else is a bug and keeps its traceback.
"""


class ScriptRNNError(Exception):
    """A problem with the user's input, files or settings, explained in one line."""
