-- When a deployment regressed and when it was rolled back, kept with the row (set by the same transaction as the
-- state change) so reports aggregate deployments instead of parsing audit events. Existing rows are filled in from
-- the audit trail, which recorded every state change.
ALTER TABLE deployments ADD COLUMN regressed_at timestamptz, ADD COLUMN rolled_back_at timestamptz;

UPDATE deployments d SET
    regressed_at = (SELECT min(a.at) FROM audit_events a
                    WHERE a.deployment_id = d.id AND a.type = 'deployment.state-changed' AND a.data::jsonb ->> 'to' = 'regressed'),
    rolled_back_at = (SELECT min(a.at) FROM audit_events a
                      WHERE a.deployment_id = d.id AND a.type = 'deployment.state-changed' AND a.data::jsonb ->> 'to' = 'rolled-back');

CREATE INDEX deployments_deployed_at ON deployments (deployed_at) WHERE deployed_at IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor, id);
