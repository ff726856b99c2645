"""One module per method, each short enough to read in its chapter."""
