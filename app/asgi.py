"""ASGI entry point for production servers: ``uvicorn app.asgi:app``."""

from app.logs import configure_logging
from app.config import get_settings
from app.main import create_app

configure_logging(get_settings().log_format, get_settings().log_level)
app = create_app()
