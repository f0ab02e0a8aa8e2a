"""The pure core: times, the timeline, the cutover state machine, escalation policy, template context, content.

Nothing here does I/O, reads the clock, builds SQL or renders Jinja; everything takes its inputs and ``now``.
"""
