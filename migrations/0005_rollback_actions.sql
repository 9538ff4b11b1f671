-- One row per deployment whose rollback action was started: the row is the claim that makes the action run once,
-- also with several replicas. A claim older than the action's time limit without an outcome (a crash mid-action)
-- may be taken over; every action is idempotent (patch to stable; the webhook keeps its delivery id).
CREATE TABLE rollback_actions (
    deployment_id   text        PRIMARY KEY REFERENCES deployments (id),
    claimed_at      timestamptz NOT NULL,
    claimed_by      text        NOT NULL,
    finished_at     timestamptz,
    succeeded       boolean,
    action          text,
    detail          text,
    attempts        integer     NOT NULL DEFAULT 0
);
