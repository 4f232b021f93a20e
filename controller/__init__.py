"""netctl: Docker's container networking as a declarative reconcile controller."""

import sys

# structlog imports rich when it can (~0.1 s of every command) only to draw exceptions in
# its console renderer; netctl reports errors itself and imports rich where it draws
# (progress bars). structlog is imported here, first, with rich out of its sight.
if "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]  # None in sys.modules: ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


def version() -> str:
    """netctl's version, as installed (looked up when asked: importlib.metadata costs ~20 ms)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("netctl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
