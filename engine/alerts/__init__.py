"""Alerts: rules over the engine's measures, their states, channels and deliveries."""
