"""The Streamlit script `showroom dashboard` runs (`streamlit run dashboard/app.py`)."""

from dashboard.ui import run

run()
