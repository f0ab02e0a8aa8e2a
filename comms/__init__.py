"""comms: a stakeholder communication engine for production cutovers."""

__version__ = "0.1.0"
