"""ASGI entry point for uvicorn: `uvicorn free4allweb_api.asgi:app`."""

from free4allweb_api.app import create_app

app = create_app()
