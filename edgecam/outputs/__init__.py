"""Outputs: where emitted results go (journal, socket, stdout, MQTT, Prometheus).

outputs.base is the interface, outputs.registry the list of outputs and how
a config becomes running ones, outputs.dispatcher the thread that feeds them.
"""
