# Replaced by app/build-release with the release's version when an artifact is built.
__version__ = "0.0.0.dev0"
