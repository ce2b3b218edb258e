"""Shipped model weights and thresholds, installed as package data."""
