"""The PostgreSQL store: many engine nodes on one database (see :mod:`.driver`)."""
