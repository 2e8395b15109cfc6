"""Per-channel touchpoint models: the event types and properties each channel really has."""
