"""Transactional messages: one templated email to one address, through the delivery queue."""
