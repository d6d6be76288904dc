"""Every error the ``lightning-spiral`` command can meet before training, as one readable line.

Our own errors already are one line. Hydra's are not: a composition error (an unknown key, a
config group option that does not exist, an override it cannot parse) is several lines with the
search path, and an instantiation error wraps the real cause in three more; an ``OSError``
(permissions, a full disk) names the errno. :func:`one_line` keeps what names the key or path and
says what to do, on one line.

Example:
    >>> text = "In 'config': Could not find 'data/bogus'\\n\\nAvailable options in 'data':\\n\\tdigits\\n\\tnpz\\n"
    >>> one_line(MissingConfigException(text))
    "`data`='bogus' is not a config option; allowed: digits, npz."
"""

from __future__ import annotations

import errno
import re

from hydra.errors import ConfigCompositionException, InstantiationException, MissingConfigException, OverrideParseException

from lightning_spiral.errors import SpiralError

UNEXPECTED_KEYWORD = re.compile(r"got an unexpected keyword argument '(\w+)'")
FULL_KEY = re.compile(r"full_key: (\S+)")
TARGET = re.compile(r"Error in call to target '([\w.]+)'")


def one_line(err: BaseException) -> str:
    """``err`` as one line naming the key or path, what is allowed, and what to do."""
    if isinstance(err, SpiralError):
        return squash(str(err))
    if isinstance(err, MissingConfigException):
        return missing_option_line(err)
    if isinstance(err, OverrideParseException):
        return f"an override cannot be parsed: {squash(str(err).splitlines()[0])} (see https://hydra.cc/docs/advanced/override_grammar/basic)."
    if isinstance(err, ConfigCompositionException):
        return composition_line(err)
    if isinstance(err, InstantiationException):
        return instantiation_line(err)
    if is_disk_full(err):
        return f"no space left on the device: {squash(str(err))[:200]}. Free space, or choose another `hydra.run.dir`."
    if isinstance(err, OSError):
        return os_error_line(err)
    return f"{type(err).__name__}: {squash(str(err))} (HYDRA_FULL_ERROR=1 shows the traceback)"


def squash(text: str) -> str:
    """Several lines as one, whitespace collapsed."""
    return " ".join(text.split())


def missing_option_line(err: MissingConfigException) -> str:
    """``data=bogus``: the group, the option and the options there are."""
    text = str(err)
    missing = re.search(r"Could not find '([^']+)'", text)
    options = err.options or re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.MULTILINE)
    if missing and "/" in missing.group(1):
        group, option = missing.group(1).rsplit("/", 1)
        return f"`{group}`={option!r} is not a config option; allowed: {', '.join(options)}."
    return squash(text.split("Config search path")[0])


def composition_line(err: ConfigCompositionException) -> str:
    """``foo=1`` on a key the config does not have; other composition errors squashed."""
    text = str(err)
    unknown = re.match(r"Could not override '([^']+)'", text)
    if unknown and "is not in struct" in str(err.__cause__ or ""):
        return f"unknown key `{unknown.group(1)}`: it is not in the config (see `lightning-spiral --cfg job` for every key)."
    cause = f" ({squash(str(err.__cause__))})" if err.__cause__ is not None else ""
    return squash(text) + cause


def instantiation_line(err: InstantiationException) -> str:
    """A target that refused its arguments: our own error inside, or an argument it does not take."""
    cause = err.__cause__
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, SpiralError):
        return squash(str(cause))
    text = str(err)
    node = FULL_KEY.search(text)
    target = TARGET.search(text)
    unexpected = UNEXPECTED_KEYWORD.search(str(cause) if cause is not None else text)
    if unexpected and node:
        return (f"unknown key `{node.group(1)}.{unexpected.group(1)}`: "
                f"{target.group(1) if target else 'its target'} takes no argument {unexpected.group(1)!r}; remove it.")
    where = f"`{node.group(1)}`" if node else "a config node"
    reason = squash(str(cause)) if cause is not None else squash(text)
    return f"{where} cannot be built: {type(cause).__name__ if cause is not None else 'error'}: {reason}"


def is_disk_full(err: BaseException) -> bool:
    """``ENOSPC``, or torch's writer failing on a full disk ("unexpected pos", "file write failed")."""
    if isinstance(err, OSError):
        return err.errno == errno.ENOSPC
    return isinstance(err, RuntimeError) and any(text in str(err) for text in ("unexpected pos", "file write failed"))


def os_error_line(err: OSError) -> str:
    """A file system error with its path and what to do."""
    path = f" {err.filename!s}" if err.filename else ""
    if isinstance(err, PermissionError):
        return f"permission denied on{path}: choose a folder you can write to (`hydra.run.dir=...`)."
    return f"{err.strerror or squash(str(err))}:{path or ' (no path)'}."
