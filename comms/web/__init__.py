"""The cutover console: a live web view of the day, acks from email and Slack, SendGrid's delivery events."""

from comms.web.app import create_app

__all__ = ["create_app"]
