"""Several cameras as one fleet over the MQTT broker they already publish to.

Each member publishes its learned heads (retained), merges every member's
heads with its own (the arithmetic of `edgecam learn merge`), and follows a
retained model rollout manifest: download, verify, test-load, switch through
the daemon's reload path. `topics.py` names the topics, `heads.py` keeps the
members' heads and merges them, `rollout.py` installs a manifest's files;
`member.py` is the daemon's side, assembled from `link.py` (its MQTT
connection), `sync.py` (the heads) and `follower.py` (the rollout);
`status.py` is `edgecam fleet status`.
"""
