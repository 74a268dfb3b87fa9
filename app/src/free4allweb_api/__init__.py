"""free4allweb: a PostgreSQL-backed sports-data API with real-time score notifications."""

from free4allweb_api._version import __version__

__all__ = ["__version__"]
