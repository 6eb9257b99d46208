"""Newsletter issues (editions): authoring, rendering, sending."""
