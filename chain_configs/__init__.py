"""Shipped chain configs (YAML), installed as package data; see mlreco_spice.config.find_config."""
