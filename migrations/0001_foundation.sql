-- Foundation: runbook versions, deployments, webhook deliveries, decisions and the audit trail.

CREATE TABLE runbook_versions (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    version     integer     NOT NULL,
    sha256      text        NOT NULL,
    content     text        NOT NULL,
    file_path   text        NOT NULL,
    loaded_at   timestamptz NOT NULL,
    CONSTRAINT runbook_versions_content_once UNIQUE (name, sha256)
);

CREATE TABLE deployments (
    id                  text        PRIMARY KEY,
    service             text        NOT NULL,
    environment         text        NOT NULL,
    version             text,
    previous_version    text,
    initiator           text,
    commit_sha          text,
    pipeline_url        text,
    state               text        NOT NULL CHECK (state IN (
                            'checking', 'denied', 'allowed', 'watching', 'regressed', 'rolling-back',
                            'rolled-back', 'kept', 'stopped', 'completed', 'cancelled')),
    runbook_version_id  bigint      NOT NULL REFERENCES runbook_versions (id),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    deployed_at         timestamptz,
    watch_started_at    timestamptz,
    watch_until         timestamptz,
    baseline_from       timestamptz,
    baseline_to         timestamptz
);

CREATE INDEX deployments_service_environment_state ON deployments (service, environment, state);
CREATE INDEX deployments_state ON deployments (state);

-- One row per accepted delivery id: a retry gets the stored answer back and causes nothing new.
CREATE TABLE webhook_deliveries (
    delivery_id     text        PRIMARY KEY,
    body_sha256     text        NOT NULL,
    deployment_id   text        NOT NULL,
    event           text        NOT NULL,
    received_at     timestamptz NOT NULL,
    status_code     integer     NOT NULL,
    response_body   text        NOT NULL
);

CREATE TABLE decisions (
    id              bigserial   PRIMARY KEY,
    deployment_id   text        NOT NULL REFERENCES deployments (id),
    at              timestamptz NOT NULL,
    kind            text        NOT NULL,
    actor           text        NOT NULL,
    reason          text
);

CREATE INDEX decisions_deployment ON decisions (deployment_id, at);

-- The audit trail. Every row carries sha256(previous row's hash || canonical form of this row), so an edited
-- or deleted row breaks the chain that GET /api/v1/audit/verify walks. Appends are serialised by an advisory
-- lock in the writing transaction, which keeps ids in chain order.
CREATE TABLE audit_events (
    id              bigserial   PRIMARY KEY,
    at              timestamptz NOT NULL,
    type            text        NOT NULL,
    deployment_id   text,
    service         text,
    actor           text,
    data            text        NOT NULL,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL UNIQUE
);

CREATE INDEX audit_events_deployment ON audit_events (deployment_id, id);
CREATE INDEX audit_events_service ON audit_events (service, id);
CREATE INDEX audit_events_type ON audit_events (type, id);
CREATE INDEX audit_events_at ON audit_events (at);

-- Append-only in the database itself, whoever connects: no role may update, delete or truncate audit rows.
-- (A superuser can still switch triggers off; the hash chain is what catches that.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
