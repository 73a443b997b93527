"""The path of a frame: source → slot → inference → filter → outputs, and the stats it leaves."""
