"""The plan: audiences, schedules and templates loaded into frozen models (fields, audiences, models);
recipients; validation."""
