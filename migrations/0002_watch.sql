-- The watch: the baseline captured once per deployment and metric, and every evaluation with its evidence.

-- The window before the deploy, as the metric source saw it, so every interval of the watch (and a restarted
-- watch) compares with the same reference instead of querying the past again.
CREATE TABLE watch_baselines (
    deployment_id   text        NOT NULL REFERENCES deployments (id),
    metric          text        NOT NULL,
    captured_at     timestamptz NOT NULL,
    samples         jsonb       NOT NULL,
    PRIMARY KEY (deployment_id, metric)
);

-- One row per metric and evaluation time. The key makes a second evaluation of the same (metric, t), by a second
-- replica or a re-run after a crash, impossible rather than unlikely: writers insert with ON CONFLICT DO NOTHING.
CREATE TABLE evaluations (
    deployment_id   text             NOT NULL REFERENCES deployments (id),
    metric          text             NOT NULL,
    at              timestamptz      NOT NULL,
    value           double precision,
    baseline        double precision,
    threshold       double precision,
    statistic       double precision NOT NULL,
    verdict         text             NOT NULL CHECK (verdict IN ('healthy', 'regressed', 'breach-of-max', 'insufficient-data', 'blind')),
    explanation     text             NOT NULL,
    query           text             NOT NULL,
    state           jsonb            NOT NULL,
    evaluated_at    timestamptz      NOT NULL,
    PRIMARY KEY (deployment_id, metric, at)
);

CREATE INDEX evaluations_deployment_at ON evaluations (deployment_id, at DESC);
