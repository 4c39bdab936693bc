"""The embeddable visitor widget: static JavaScript and CSS served by the hub at /widget.js."""
from pathlib import Path

WIDGET_DIR = Path(__file__).resolve().parent
