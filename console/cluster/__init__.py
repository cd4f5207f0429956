"""The attached console's pieces (``taskdeck console --attach``): the cluster as read
from the store, commands to its nodes, and the steering that uses them. The command
line uses the plain-Python ones (rows, commands) without loading Textual."""
