-- The decision channel: an outbox of messages written in the transaction of the change that causes them, the root
-- message of each deployment's Slack thread, and the local decision inbox that stands in for Slack without a bot token.

CREATE TABLE outbox (
    id               bigserial   PRIMARY KEY,
    deployment_id    text,
    kind             text        NOT NULL,
    payload          jsonb       NOT NULL,
    -- The same message enqueued twice (a retried transaction, a second subscriber) is stored once.
    idempotency_key  text        NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    delivered_at     timestamptz,
    -- The ts Slack gave a posted message: a redelivered reply finds it and is not posted twice.
    delivered_ts     text,
    last_error       text
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_pending_per_deployment ON outbox (deployment_id, id) WHERE delivered_at IS NULL;

-- One root message per deployment in its runbook's decision channel; later state changes edit it (chat.update).
CREATE TABLE slack_threads (
    deployment_id  text        PRIMARY KEY,
    channel        text        NOT NULL,
    root_ts        text        NOT NULL,
    created_at     timestamptz NOT NULL
);

-- Deployments waiting for a human decision, with the newest evidence the audit trail holds for each.
CREATE VIEW decision_inbox AS
SELECT d.id AS deployment_id, d.service, d.environment, d.version, d.previous_version, d.initiator, d.updated_at AS regressed_at,
       (SELECT a.data FROM audit_events a
         WHERE a.deployment_id = d.id AND a.type = 'evaluation.verdict-changed'
         ORDER BY a.id DESC LIMIT 1) AS evidence
FROM deployments d
WHERE d.state = 'regressed';
