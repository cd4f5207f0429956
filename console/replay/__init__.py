"""Record the console (``console --record FILE``) and replay it (``taskdeck replay FILE``):
what the dashboard showed, refresh by refresh, on a timeline, with no engine or store."""
