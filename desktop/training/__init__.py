"""Training: start, stop and watch federated tasks; join other nodes' tasks."""
