-- Retention of evaluations (RolloutGate:Watch:EvaluationRetentionDays, off by default). Once a deployment's watch has
-- been over for that long, the evaluations between its verdict changes are deleted: every evaluation that changed a
-- metric's verdict (its first included) and each metric's last are kept, and so is the audit trail. When that was done
-- is kept with the deployment, so its page can say so and the pass does not visit it again; the partial index keeps
-- the pass's search to the deployments not thinned yet.
ALTER TABLE deployments ADD COLUMN evaluations_thinned_at timestamptz;

CREATE INDEX deployments_not_thinned ON deployments (updated_at) WHERE evaluations_thinned_at IS NULL;
