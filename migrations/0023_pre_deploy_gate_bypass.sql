-- A change the pipeline deployed without the gate's allow is watched all the same (RolloutGate cannot stop a deploy;
-- the change is running): pre_deploy_gate says how the gate was bypassed, 'overridden' (deployed after a deny) or
-- 'skipped' (deployed with no predeploy, so the runbook's pre-deploy checks never ran); NULL when the gate allowed it
-- or the runbook has no checks. gate_failed_checks names the checks of the deny that was overridden.
ALTER TABLE deployments ADD COLUMN pre_deploy_gate text CHECK (pre_deploy_gate IN ('overridden', 'skipped'));
ALTER TABLE deployments ADD COLUMN gate_failed_checks text[];
