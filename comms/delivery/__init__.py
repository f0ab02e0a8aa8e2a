"""The sender: the send loop (dispatcher), opening occurrences and writing their rows (opening, materialize),
envelopes, outcomes, crash recovery, the worker loop."""
