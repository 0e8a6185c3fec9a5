"""Task delegation (`covey tasks`): signed requests, bounded execution, signed execution proofs.

Modules: ``proofs`` (requests, DSSE envelopes, in-toto statements), ``tasks``
(the task types), ``runner`` (one task in a limited child process) and
``executor`` (queue, concurrency and per-peer rate limits), ``child`` (the
child process's entry point).
"""
