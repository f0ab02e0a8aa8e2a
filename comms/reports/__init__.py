"""Read-only views of the store and the plan: status, metrics, the effectiveness report, audit, readiness, previews."""
