"""Programme definitions (roadmap phase 1): validate, publish immutable versions."""
