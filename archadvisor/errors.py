"""Typed, one-line errors. The CLI turns each into a message on stderr and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The closest valid choice to a mistyped value, or None when nothing is close."""
    import difflib  # only on the error path

    matches = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


class ArchAdvisorError(Exception):
    """Base class: every subclass carries a one-line, user-facing message."""


class InputError(ArchAdvisorError, ValueError):
    """A bad flag value: names the flag, the value, the valid choices and the closest match."""

    def __init__(self, flag: str, value: object, choices: Iterable[str] | str, hint: str | None = None):
        self.flag, self.value = flag, value
        if isinstance(choices, str):
            expected = choices
            suggestion = None
        else:
            choices = list(choices)
            expected = "one of " + ", ".join(choices)
            suggestion = closest(str(value), choices)
        msg = f"invalid value for {flag}: {value!r}; expected {expected}"
        if suggestion is not None:
            msg += f" (did you mean {suggestion!r}?)"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class MissingInput(InputError):
    """A required flag was not given: names it and what it means."""

    def __init__(self, flag: str, what: str):
        self.flag, self.value = flag, None
        ArchAdvisorError.__init__(self, f"missing {flag}: {what}")


class RuleError(ArchAdvisorError):
    """A malformed rule file: names the file, the line, the rule id and what is wrong."""

    def __init__(self, file: str, line: int | None, rule: str | None, problem: str):
        self.file, self.line, self.rule, self.problem = file, line, rule, problem
        where = f"{file}:{line}" if line else file
        who = f" rule {rule!r}:" if rule else ""
        # one line whatever the file held: a newline in a key or a path would split the message
        message = f"{where}:{who} {problem}"
        super().__init__("".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message))
