"""The console's screens: modal forms and views pushed over the dashboard."""
