"""The plan: audiences, schedules and templates loaded into frozen models; recipients; validation."""
