"""Snapshots of events: the full frame of each label change, a JPEG with a JSON sidecar.

`store` owns the files (names, retention, the listing `edgecam snapshots`
prints), `writer` the `edgecam-snapshots` thread that saves them and only
then hands the result, now naming its snapshot, to the outputs.
"""
