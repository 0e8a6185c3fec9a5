"""Signed knowledge sharing: packets, their storage, gossip and catch-up decisions.

``protocol`` (the packet and the know.* bodies), ``db`` (SQLite tables on the
node's Store), ``gossip`` (policy, dedupe, limits, counters, catch-up plans)
and ``intake`` (the receiving pipeline that joins them). No I/O to the
network happens here: the service sends what these modules decide.
"""
