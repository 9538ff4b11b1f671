-- The watch evaluates every due deployment together in one clustered sweep instead of one Quartz job per deployment.
-- watch_due_at is the next evaluation time of a watching deployment, kept by the sweep (null: not seen by it yet), so
-- finding what is due is one index scan. The per-deployment watch jobs of 0003 are removed: the sweep takes over every
-- deployment in state watching, whatever its job was.
ALTER TABLE deployments ADD COLUMN watch_due_at timestamptz;

CREATE INDEX deployments_watch_due ON deployments (watch_due_at NULLS FIRST) WHERE state = 'watching';

DELETE FROM qrtz_fired_triggers WHERE trigger_group = 'watch';
DELETE FROM qrtz_simple_triggers WHERE trigger_group = 'watch';
DELETE FROM qrtz_triggers WHERE trigger_group = 'watch';
DELETE FROM qrtz_job_details WHERE job_group = 'watch';
