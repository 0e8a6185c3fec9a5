"""Signed knowledge sharing: packets, their storage, gossip and catch-up decisions, and the service.

``protocol`` (the packet and the know.* bodies), ``db`` (SQLite tables on the
node's Store), ``gossip`` (policy, dedupe, limits, counters, catch-up plans),
``engine`` (the intake pipeline and answers that join them, no I/O),
``service`` (the engine's decisions sent over the node's links) and
``commands`` (`covey knowledge ...`).
"""
