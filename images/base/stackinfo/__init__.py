"""What an image of the example stack is: its role, Python and installed distributions."""
import importlib.metadata
import os
import platform

__all__ = ["describe", "distributions"]


def distributions():
    """Names and versions of the installed Python distributions, sorted by name."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = dist.version
    return dict(sorted(found.items()))


def describe():
    """A summary of the image, for `stack-info` and the tests."""
    return {
        "image": os.environ.get("STACK_IMAGE", "unknown"),
        "python": platform.python_version(),
        "distributions": distributions(),
    }
