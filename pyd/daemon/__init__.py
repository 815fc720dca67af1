"""The daemon side: start-up, the engine's services and the Engine API on top of them."""
