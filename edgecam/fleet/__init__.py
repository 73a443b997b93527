"""Several cameras as one fleet over the MQTT broker they already publish to.

Each member publishes its learned heads (retained), classifies with the
fleet's head (an aggregator's merge of every member's, the arithmetic of
`edgecam learn merge`) plus its own, and follows a retained model rollout
manifest: download, verify, test-load, switch through the daemon's reload
path. `topics.py` names the topics, `heads.py` keeps the members' heads on
an aggregator and merges them (`aggregator.py` publishes the merge),
`fleethead.py` checks the fleet's head a member hears and combines it with
its own, `rollout.py` installs a manifest's files;
`member.py` is the daemon's side, assembled from `link.py` (its MQTT
connection), `sync.py` (the heads) and `follower.py` (the rollout);
`status.py` is `edgecam fleet status`.
"""
