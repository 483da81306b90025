"""The audit log as people and tools read it: the page, the API and their shared filter
(``service.audit`` records the events)."""
