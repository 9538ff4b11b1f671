-- An outbox row that can never be delivered (Slack refuses its content, or it has failed for longer than
-- RolloutGate:Slack:AbandonAfter) is set aside with the time it was given up: it keeps its payload and last error
-- for the record, is audited (slack.message-abandoned), and no longer holds back its deployment's later messages.
ALTER TABLE outbox ADD COLUMN abandoned_at timestamptz;

DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
DROP INDEX outbox_pending_per_deployment;
CREATE INDEX outbox_pending_per_deployment ON outbox (deployment_id, id) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
