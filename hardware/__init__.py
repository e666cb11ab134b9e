"""Installer side: hardware profiles, coverage planning, provisioning, calibration, commissioning."""
