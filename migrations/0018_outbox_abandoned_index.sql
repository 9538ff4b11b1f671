-- /metrics counts the Slack messages given up for good (rolloutgate_slack_outbox_abandoned) at every scrape, and the
-- outbox keeps every message ever sent: a partial index keeps that count to the few abandoned rows.
CREATE INDEX outbox_abandoned ON outbox (abandoned_at) WHERE abandoned_at IS NOT NULL;
