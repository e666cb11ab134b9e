"""The Streamlit script of the dashboard (`showroom dashboard` serves it through `dashboard/server.py`)."""

from dashboard.ui import run

run()
