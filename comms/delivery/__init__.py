"""The sender: dispatcher, materialization of deliveries, envelopes, crash recovery, the worker loop."""
