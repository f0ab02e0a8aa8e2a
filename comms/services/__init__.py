"""What the CLI (and the console) call: scheduling, incidents, escalations, ad-hoc sends, simulation."""
