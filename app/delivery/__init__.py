"""Delivery: transports, the queue of deliveries and the dispatcher."""
