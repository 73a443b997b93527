"""The status page: what the camera sees, with its zones and labels, and the daemon's figures.

`page` holds what the page shows (the settings a reload swaps, the last
result of each zone), `preview` turns the newest frame into the preview
JPEG, `auth` checks the token, and `server` serves it all with aiohttp on a
thread of its own; outputs.web is the Output that starts and stops it.
"""
