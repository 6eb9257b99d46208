"""Public pages and the operational endpoints."""
