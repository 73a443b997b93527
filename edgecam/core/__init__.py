"""The ground floor: the words every stage speaks (frames and pictures, results, stats and their
counters, the hand-offs between threads, the seams), importing nothing of edgecam but errors and
common. Every other package may import it; it imports none of them (tests/unit/test_layers.py)."""
