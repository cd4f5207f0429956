"""How the console steers and reads: one interface (base), a local and an attached
implementation. The app builds one of them; nothing else asks which mode it is in."""
