-- The outbox keeps every message ever sent, and a deployment's own rows are looked up among them in the transaction that
-- holds the audit trail's lock: whether it has a root message (before each reply) and, since slack.settle, which of its
-- replies offered buttons (at each decision and state change). With only the pending rows indexed by deployment, each
-- lookup read the whole table.
CREATE INDEX outbox_per_deployment ON outbox (deployment_id, id);
