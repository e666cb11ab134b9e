"""Streamlit dashboard for store managers, brand HQ and installers."""
