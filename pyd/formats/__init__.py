"""Docker's formats that both the client and the daemon speak (no I/O, no daemon state)."""
