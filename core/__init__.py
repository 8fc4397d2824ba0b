"""feedbackloop core: domain, storage, settings, hookspecs, plugin manager, pipeline and CLI."""

from core.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
