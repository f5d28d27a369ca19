"""The five agents of the Laddr migration guide, one worker module each (python -m agents.<name>)."""
